"""The capture or void an authorized payment is undergoing (`Payment.authorization_step`): begun
by one compare-and-set from none, so exactly one of capture, cancel and expiry goes on, and
taken off again by one naming it, after the gateway said no. Neither is a state change a reader
sees, but both move `version` and `updatedAt` (reconciliation asks again about a step only once
it has been left alone for RECONCILE_AFTER_SECONDS)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from payments_api.config.constants import PaymentStatus
from payments_api.config.database import Database
from payments_api.models import payment as payment_store
from payments_api.models.payment import AuthorizationStep, Payment

AUTHORIZED = {"status": PaymentStatus.AUTHORIZED.value}
FREE = {**AUTHORIZED, "authorizationStep": None}
"""An authorization no capture or void has begun on."""
UNDER_WAY = {"authorizationStep.kind": {"$in": ["capture", "void"]}}
"""Payments amid a capture or a void."""


def doing(step: AuthorizationStep) -> dict[str, Any]:
    """The payment is still authorized and amid this very step."""
    return {**AUTHORIZED, "authorizationStep.stepId": step.step_id}


async def begin(
    db: Database,
    payment_id: str,
    step: AuthorizationStep,
    now: datetime,
    also: dict[str, Any] | None = None,
) -> Payment | None:
    """The step set if no other has begun (and the payment still matches `also`); None
    otherwise."""
    return await payment_store.update_where(
        db,
        payment_id,
        {**FREE, **(also or {})},
        {"$set": {"authorizationStep": step.to_mongo()}},
        now=now,
    )


async def end(
    db: Database, payment_id: str, step: AuthorizationStep, now: datetime
) -> Payment | None:
    """The step taken off, if the payment is still amid it: the authorization is free again."""
    return await payment_store.update_where(
        db, payment_id, doing(step), {"$set": {"authorizationStep": None}}, now=now
    )
