"""tests/integration/test_manual_capture.py on a Redis Cluster."""

from tests.integration.test_manual_capture import *  # noqa: F403
