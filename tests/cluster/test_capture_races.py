"""tests/integration/test_capture_races.py on a Redis Cluster."""

from tests.integration.test_capture_races import *  # noqa: F403
