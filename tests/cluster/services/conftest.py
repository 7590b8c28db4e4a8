"""The service-level fixtures of `tests/services`, for its tests run here on the cluster."""

from tests.services.conftest import (  # noqa: F401
    make_merchant,
    make_pending_payment,
    make_user,
    merchant,
    sandbox,
    service_settings,
    services,
    user,
)
