"""tests/integration/test_redis_scripts.py on a Redis Cluster."""

from tests.integration.test_redis_scripts import *  # noqa: F403
