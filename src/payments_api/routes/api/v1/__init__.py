"""The v1 router, assembled from the modules beside it.

Each module's router carries its full `/api/v1/...` prefix, so a matched route's `path` is the
whole template (metrics label requests by it).
"""

from __future__ import annotations

from fastapi import APIRouter

from payments_api.routes.api.v1 import api_keys, auth, events, merchants, payments, users

router = APIRouter()
router.include_router(users.router)
router.include_router(auth.router)
router.include_router(merchants.router)
router.include_router(api_keys.router)
router.include_router(payments.router)
router.include_router(events.router)
router.include_router(events.merchant_router)
