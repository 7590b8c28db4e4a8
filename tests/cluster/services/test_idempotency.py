"""tests/services/test_idempotency.py on a Redis Cluster."""

from tests.services.test_idempotency import *  # noqa: F403
