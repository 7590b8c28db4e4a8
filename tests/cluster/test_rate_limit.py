"""tests/integration/test_rate_limit.py on a Redis Cluster."""

from tests.integration.test_rate_limit import *  # noqa: F403
