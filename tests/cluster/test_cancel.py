"""tests/integration/test_cancel.py on a Redis Cluster."""

from tests.integration.test_cancel import *  # noqa: F403
