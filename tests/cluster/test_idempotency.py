"""tests/integration/test_idempotency.py on a Redis Cluster."""

from tests.integration.test_idempotency import *  # noqa: F403
