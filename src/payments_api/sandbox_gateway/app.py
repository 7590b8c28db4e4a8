"""The sandbox payment gateway: a small card processor for development and tests.

It answers by the last three digits of the amount (`endings.py`: 402 declined, 408 slow, 503
unavailable, 409 a charge request that arrives late, anything else approved), keeps what it
charged in memory (`ledger.py`), and is idempotent on the paymentId of a charge and the refundId
of a refund. `charges_made` counts real charges, so tests can prove that one key never charged
twice.

A charge with `capture: false` authorizes instead (same endings, same idempotency, counted in
`authorizations_made`): the amount is held, then taken once by
`POST /v1/charges/{paymentId}/capture` — all of it or a part, idempotent on the captureId, no
endings — or let go by a void, which is `cancel` applied to an authorization. A capture makes
the charge `approved` with `amount` the captured part, so refunds are bounded by what was taken.

A reversal (`POST /v1/charges/{paymentId}/reverse`) is how a caller that lost track of a charge
makes sure it never happens: when nothing was charged yet, the paymentId is marked `reversed`
and every later charge with it is refused; when a charge (or an authorization) already exists,
the reversal is refused (409) with it, so the caller settles it from the answer instead.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from payments_api.sandbox_gateway.endings import (
    DECLINED,
    LATE,
    LATE_EXTRA_SECONDS,
    SLOW,
    SLOW_EXTRA_SECONDS,
    UNAVAILABLE,
    ending_of,
)
from payments_api.sandbox_gateway.ledger import Charge, SandboxLedger

__all__ = ["Charge", "SandboxLedger", "create_sandbox_app"]


class ChargeRequest(BaseModel):
    payment_id: str = Field(alias="paymentId", min_length=1)
    amount: int = Field(gt=0, strict=True)
    currency: str = "KRW"
    payment_method: str = Field(alias="paymentMethod", default="card")
    capture: bool = True
    """False: authorize only, and take the money with a capture later."""


class RefundRequest(BaseModel):
    refund_id: str = Field(alias="refundId", min_length=1)
    amount: int = Field(gt=0, strict=True)


class CaptureRequest(BaseModel):
    capture_id: str = Field(alias="captureId", min_length=1)
    amount: int = Field(gt=0, strict=True)


def _problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _refused_with(status: int, code: str, message: str, charge: Charge) -> JSONResponse:
    """A refusal that carries the charge it is about, so the caller can settle from it."""
    return JSONResponse({"error": code, "message": message, **charge.to_json()}, status_code=status)


def create_sandbox_app(timeout_seconds: float, reconcile_after_seconds: float) -> FastAPI:
    """The sandbox; `timeout_seconds` is the caller's GATEWAY_TIMEOUT_SECONDS (the 408 case
    answers 2 s after it) and `reconcile_after_seconds` its RECONCILE_AFTER_SECONDS (the 409
    case charges 3 s after the caller's reconciler may have looked for the charge)."""
    app = FastAPI(title="sandbox-gateway", docs_url=None, redoc_url=None, openapi_url=None)
    ledger = SandboxLedger()
    app.state.ledger = ledger
    late_charge_delay = timeout_seconds + reconcile_after_seconds + LATE_EXTRA_SECONDS
    _add_charge_routes(
        app, ledger, timeout_seconds=timeout_seconds, late_charge_delay=late_charge_delay
    )
    _add_capture_route(app, ledger)
    _add_undo_routes(app, ledger)
    _add_stats_routes(app, ledger)
    return app


def _answer_existing(existing: Charge, body: ChargeRequest) -> JSONResponse:
    """The answer to a charge (or authorization) request for a paymentId the sandbox already
    holds: that charge as it stands now, if the request is the one that made it."""
    if existing.status == "reversed":
        return _refused_with(
            409,
            "CHARGE_REVERSED",
            "This paymentId was reversed: it can never be charged",
            existing,
        )
    if existing.requested_amount != body.amount:
        return _problem(409, "IDEMPOTENCY_CONFLICT", "paymentId reused with another amount")
    if existing.manual != (not body.capture):
        return _problem(409, "IDEMPOTENCY_CONFLICT", "paymentId reused with another capture")
    status = 402 if existing.status == "declined" else 200
    return JSONResponse(existing.to_json(), status_code=status)


def _add_charge_routes(
    app: FastAPI, ledger: SandboxLedger, *, timeout_seconds: float, late_charge_delay: float
) -> None:
    """Charge or authorize (idempotent on the paymentId, answered by the amount's last three
    digits) and look a charge up."""

    @app.post("/v1/charges")
    async def charge(body: ChargeRequest) -> JSONResponse:
        ledger.charge_attempts[body.payment_id] = ledger.charge_attempts.get(body.payment_id, 0) + 1
        ending = ending_of(body.amount)
        if ending == LATE and body.payment_id not in ledger.charges:
            # Held on its way: it lands long after the caller stopped waiting, unless the
            # paymentId was reversed meanwhile (the check below runs after the wait).
            await asyncio.sleep(late_charge_delay)
        existing = ledger.charges.get(body.payment_id)
        if existing is not None:
            return _answer_existing(existing, body)
        if ending == UNAVAILABLE:
            return _problem(503, "PROCESSOR_UNAVAILABLE", "The processor is unavailable")
        manual = not body.capture
        if ending == DECLINED:
            declined = Charge.declined(body.payment_id, body.amount, body.currency, manual=manual)
            ledger.charges[body.payment_id] = declined
            return JSONResponse(declined.to_json(), status_code=402)
        taken = Charge.taken(body.payment_id, body.amount, body.currency, manual=manual)
        ledger.charges[body.payment_id] = taken
        if manual:
            ledger.authorizations_made += 1
        else:
            ledger.charges_made += 1
        if ending == SLOW:
            await asyncio.sleep(timeout_seconds + SLOW_EXTRA_SECONDS)
        return JSONResponse(taken.to_json())

    @app.get("/v1/charges/{payment_id}")
    async def lookup(payment_id: str) -> JSONResponse:
        existing = ledger.charges.get(payment_id)
        if existing is None:
            return _problem(404, "CHARGE_NOT_FOUND", "No charge for this paymentId")
        return JSONResponse(existing.to_json())


def _add_capture_route(app: FastAPI, ledger: SandboxLedger) -> None:
    """Take the money of an authorization, once: all of it or a part (no amount endings)."""

    @app.post("/v1/charges/{payment_id}/capture")
    async def capture(payment_id: str, body: CaptureRequest) -> JSONResponse:
        ledger.capture_requests += 1
        existing = ledger.charges.get(payment_id)
        if existing is None:
            return _problem(404, "CHARGE_NOT_FOUND", "No charge for this paymentId")
        if existing.status == "authorized":
            if body.amount > existing.authorized_amount:
                return JSONResponse(
                    {
                        "error": "CAPTURE_EXCEEDS_AUTHORIZED",
                        "message": "The capture exceeds the authorized amount",
                        "authorizedAmount": existing.authorized_amount,
                    },
                    status_code=422,
                )
            existing.capture(body.capture_id, body.amount)
            ledger.captures_made += 1
            return JSONResponse(existing.to_json())
        if existing.status == "approved" and existing.capture_id == body.capture_id:
            if existing.captured_amount != body.amount:
                return _problem(409, "IDEMPOTENCY_CONFLICT", "captureId reused with another amount")
            return JSONResponse(existing.to_json())
        if existing.status == "approved":
            return _refused_with(
                409, "ALREADY_CAPTURED", "This charge was already captured", existing
            )
        return _refused_with(
            409, "NOT_CAPTURABLE", "Only an authorized charge can be captured", existing
        )


def _add_undo_routes(app: FastAPI, ledger: SandboxLedger) -> None:
    """What takes a charge back, or makes sure it never happens: reverse, cancel (a void, for
    an authorization), refund."""

    @app.post("/v1/charges/{payment_id}/reverse")
    async def reverse(payment_id: str) -> JSONResponse:
        existing = ledger.charges.get(payment_id)
        if existing is None:
            reversed_ = Charge(payment_id, 0, "KRW", "reversed", None)
            ledger.charges[payment_id] = reversed_
            return JSONResponse(reversed_.to_json())
        if existing.status == "reversed":
            return JSONResponse(existing.to_json())
        return _refused_with(
            409, "ALREADY_PROCESSED", "A charge exists for this paymentId", existing
        )

    @app.post("/v1/charges/{payment_id}/cancel")
    async def cancel(payment_id: str) -> JSONResponse:
        ledger.cancel_requests += 1
        existing = ledger.charges.get(payment_id)
        if existing is None:
            return _problem(404, "CHARGE_NOT_FOUND", "No charge for this paymentId")
        if existing.status == "cancelled":
            return JSONResponse(existing.to_json())
        if existing.status == "authorized":
            # A void: nothing was taken, so nothing is given back; the hold is let go.
            existing.status = "cancelled"
            return JSONResponse(existing.to_json())
        if existing.status != "approved" or existing.refunds:
            return _problem(409, "NOT_CANCELLABLE", "Only an unrefunded approved charge")
        existing.status = "cancelled"
        return JSONResponse(existing.to_json())

    @app.post("/v1/charges/{payment_id}/refunds")
    async def refund(payment_id: str, body: RefundRequest) -> JSONResponse:
        ledger.refund_requests += 1
        existing = ledger.charges.get(payment_id)
        if existing is None:
            return _problem(404, "CHARGE_NOT_FOUND", "No charge for this paymentId")
        if body.refund_id in existing.refunds:
            return JSONResponse({"refundId": body.refund_id, "status": "succeeded"})
        if existing.status != "approved":
            return _problem(409, "NOT_REFUNDABLE", "Only an approved charge can be refunded")
        if existing.refunded + body.amount > existing.amount:
            return _problem(422, "REFUND_EXCEEDS_CHARGE", "The refund exceeds the charge")
        existing.refunds[body.refund_id] = body.amount
        return JSONResponse({"refundId": body.refund_id, "status": "succeeded"})


def _add_stats_routes(app: FastAPI, ledger: SandboxLedger) -> None:
    """What the sandbox counted (read by tests that run it as a process of its own), and its
    health."""

    @app.get("/v1/stats")
    async def stats() -> dict[str, int]:
        return {
            "chargesMade": ledger.charges_made,
            "charges": len(ledger.charges),
            "chargeRequests": sum(ledger.charge_attempts.values()),
            "refundRequests": ledger.refund_requests,
            "cancelRequests": ledger.cancel_requests,
            "authorizationsMade": ledger.authorizations_made,
            "capturesMade": ledger.captures_made,
            "captureRequests": ledger.capture_requests,
        }

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}
