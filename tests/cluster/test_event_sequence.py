"""tests/integration/test_event_sequence.py on a Redis Cluster."""

from tests.integration.test_event_sequence import *  # noqa: F403
