"""tests/integration/test_stats.py on a Redis Cluster."""

from tests.integration.test_stats import *  # noqa: F403
