"""tests/integration/test_refund_concurrency.py on a Redis Cluster."""

from tests.integration.test_refund_concurrency import *  # noqa: F403
