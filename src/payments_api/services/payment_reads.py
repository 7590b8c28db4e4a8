"""Reading payments: one payment (from the read cache when it is there); the histories are
services/payment_history.py.

Who may read a payment: its payer (the user), its payee (the merchant) and an active admin.
Anyone else is told it does not exist, so that payment ids cannot be probed. What only the
payee's side may do (refund, capture) is refused to the payer (403): `get_for_payee`.
"""

from __future__ import annotations

import json
from typing import Any

from payments_api.config.database import Database
from payments_api.errors import ForbiddenError, NotFoundError
from payments_api.models import payment as payment_store
from payments_api.models import user as user_store
from payments_api.models.payment import Payment
from payments_api.services.auth import Principal
from payments_api.services.payment_cache import PaymentCache, cache_key
from payments_api.utils.cache import versioned_payload


class PaymentNotFound(NotFoundError):
    code = "PAYMENT_NOT_FOUND"
    message = "Payment not found"


def is_payer_or_payee(principal: Principal, user_id: str, merchant_id: str) -> bool:
    """The payment's own user or its merchant (admins may read too, but that needs a lookup)."""
    if principal.kind == "merchant":
        return principal.id == merchant_id
    return principal.id == user_id


class PaymentReadService:
    def __init__(self, db: Database, cache: PaymentCache) -> None:
        self.db = db
        self.cache = cache

    async def _may_read(self, principal: Principal, user_id: str, merchant_id: str) -> bool:
        if is_payer_or_payee(principal, user_id, merchant_id):
            return True
        if principal.kind == "merchant":
            return False
        user = await user_store.find_by_id(self.db, principal.id)
        return user is not None and user.is_active_admin

    async def read_json(
        self, principal: Principal, payment_id: str, prefetched: dict[str, Any] | None = None
    ) -> str:
        """The contract's payment object as JSON: from the caller's cache entry when it is
        there (its user's or merchant's: no database and no re-serialisation), else from the
        database, then cached. `prefetched` holds cache entries already read in this request's
        round trip."""
        key = cache_key(principal.id, payment_id)
        if prefetched is not None and key in prefetched:
            cached = versioned_payload(prefetched[key])
        else:
            cached = await self.cache.get(principal.id, payment_id)
        if cached is not None:
            owners: dict[str, Any] = json.loads(cached)
            if await self._may_read(principal, owners["userId"], owners["merchantId"]):
                return cached
            raise PaymentNotFound()
        payment = await self.get_for_reader(principal, payment_id)
        return await self.cache.put(payment)

    async def get_for_reader(self, principal: Principal, payment_id: str) -> Payment:
        payment = await payment_store.find_by_id(self.db, payment_id)
        if payment is None or not await self._may_read(
            principal, payment.user_id, payment.merchant_id
        ):
            raise PaymentNotFound()
        return payment

    async def get_for_payee(
        self, principal: Principal, payment_id: str, refused: ForbiddenError
    ) -> Payment:
        """The payment for its merchant or an active admin; its own user is `refused` (403),
        anyone else told it does not exist."""
        payment = await payment_store.find_by_id(self.db, payment_id)
        if payment is None:
            raise PaymentNotFound()
        if principal.kind == "merchant":
            if principal.id == payment.merchant_id:
                return payment
            raise PaymentNotFound()
        user = await user_store.find_by_id(self.db, principal.id)
        if user is not None and user.is_active_admin:
            return payment
        if principal.id == payment.user_id:
            raise refused
        raise PaymentNotFound()
