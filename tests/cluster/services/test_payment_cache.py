"""tests/services/test_payment_cache.py on a Redis Cluster."""

from tests.services.test_payment_cache import *  # noqa: F403
