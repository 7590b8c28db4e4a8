"""tests/integration/test_events.py on a Redis Cluster."""

from tests.integration.test_events import *  # noqa: F403
