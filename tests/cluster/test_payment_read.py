"""tests/integration/test_payment_read.py on a Redis Cluster."""

from tests.integration.test_payment_read import *  # noqa: F403
