"""tests/integration/test_refund_replay.py on a Redis Cluster."""

from tests.integration.test_refund_replay import *  # noqa: F403
