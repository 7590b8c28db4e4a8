"""tests/integration/test_payment_concurrency.py on a Redis Cluster."""

from tests.integration.test_payment_concurrency import *  # noqa: F403
