"""Payments: the Idempotency-Key header, history query parameters, status codes and envelopes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from starlette.types import Scope

from payments_api.config.constants import MAX_QUERY_INTEGER, PaymentStatus
from payments_api.errors import AppError, BadRequestError, UnprocessableError
from payments_api.middleware.auth import ServicesDep
from payments_api.models.payment import public_view
from payments_api.models.refund import Refund
from payments_api.schemas.payments import (
    CancelEnvelope,
    Pagination,
    PaymentCreate,
    PaymentEnvelope,
    PaymentListEnvelope,
    PaymentOut,
    PaymentReplayEnvelope,
    RefundEnvelope,
    RefundInfo,
    RefundListEnvelope,
    RefundOut,
    RefundRequest,
    Stats,
    StatsEnvelope,
)
from payments_api.services.auth import Principal
from payments_api.services.payment_cache import cache_key
from payments_api.services.payments import HistoryQuery, NewPayment
from payments_api.services.registry import Services

MAX_IDEMPOTENCY_KEY_LENGTH = 255


def optional_idempotency_key(raw: str | None) -> str | None:
    """1-255 printable ASCII characters, or absent; 400 INVALID_IDEMPOTENCY_KEY otherwise."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_IDEMPOTENCY_KEY_LENGTH or not all(
        " " <= char <= "~" for char in raw
    ):
        raise BadRequestError(
            "INVALID_IDEMPOTENCY_KEY",
            "The Idempotency-Key must be 1-255 printable ASCII characters",
        )
    return raw


IDEMPOTENCY_KEY_PATTERN = f"^[ -~]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}$"
"""What `optional_idempotency_key` accepts, as a JSON Schema pattern: printable ASCII."""


def idempotency_key_parameter(*, required: bool) -> dict[str, Any]:
    """The Idempotency-Key header as the OpenAPI description declares it. The route reads the
    header itself (hidden from the schema), so that a missing or malformed key is this
    contract's 400, not a 422."""
    presence = "Required" if required else "Optional"
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": required,
        "description": f"{presence}: 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, "
        "scoped to the caller; a retry with the same key and body is answered with the first "
        "result. Missing (where required) or malformed: 400 MISSING_IDEMPOTENCY_KEY / "
        "INVALID_IDEMPOTENCY_KEY.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
            "pattern": IDEMPOTENCY_KEY_PATTERN,
        },
    }


def required_idempotency_key(raw: str | None) -> str:
    key = optional_idempotency_key(raw)
    if key is None:
        raise BadRequestError("MISSING_IDEMPOTENCY_KEY", "The Idempotency-Key header is required")
    return key


async def create(
    services: Services,
    user: Principal,
    body: PaymentCreate,
    key_header: str | None,
    response: Response,
) -> PaymentEnvelope | PaymentReplayEnvelope:
    key = required_idempotency_key(key_header)
    outcome = await services.payments.create(
        user.id,
        key,
        NewPayment(
            amount=body.amount,
            merchant_id=body.merchant_id,
            payment_method=body.payment_method.value,
            product_name=body.product_name,
            currency=body.currency,
        ),
    )
    if outcome.error is not None:  # 402 declined / 503 unreachable, first time or replayed
        raise AppError(
            outcome.error["error"],
            outcome.error["message"],
            extra={"payment": outcome.payment},
            headers={"Idempotent-Replayed": "true"} if outcome.replayed else None,
            status=outcome.status_code,
        )
    response.status_code = outcome.status_code
    payment = PaymentOut.model_validate(outcome.payment)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
        return PaymentReplayEnvelope(payment=payment)
    return PaymentEnvelope(payment=payment)


READ_PATH = re.compile(r"^/api/v1/payments/([^/]+)$")


def read_prefetch_key(scope: Scope) -> str | None:
    """For the rate limiter: a payment read needs its cache entry first, so the limiter
    fetches it in the same Redis round trip as the count."""
    if scope["method"] != "GET":
        return None
    match = READ_PATH.match(scope["path"])
    return cache_key(match.group(1)) if match else None


async def read(
    services: Services, principal: Principal, payment_id: str, request: Request
) -> Response:
    """The hot path: the cached JSON goes out as it was stored (it was serialised from the
    same `public_view` the declared `PaymentEnvelope` describes), without a parse and a
    re-serialisation per read."""
    prefetched = getattr(request.state, "prefetched", None)
    payment = await services.payments.read_json(principal, payment_id, prefetched)
    return Response(
        content=b'{"success":true,"payment":' + payment.encode() + b"}",
        media_type="application/json",
    )


async def history(
    services: Services,
    query: HistoryQuery,
    *,
    user_id: str | None = None,
    merchant_id: str | None = None,
) -> PaymentListEnvelope:
    found, total = await services.payments.history(
        user_id=user_id, merchant_id=merchant_id, query=query
    )
    total_pages = (total + query.limit - 1) // query.limit
    return PaymentListEnvelope(
        payments=[PaymentOut.model_validate(public_view(p)) for p in found],
        pagination=Pagination(
            current_page=query.page,
            total_pages=total_pages,
            total_count=total,
            has_next_page=query.page < total_pages,
            has_prev_page=query.page > 1,
        ),
    )


async def cancel(
    services: Services, user: Principal, payment_id: str, reason: str
) -> CancelEnvelope:
    payment = await services.payments.cancel(user.id, payment_id, reason)
    return CancelEnvelope(
        refund_info=RefundInfo(payment_id=payment.id, refund_amount=payment.amount)
    )


def _refund_out(refund: Refund) -> RefundOut:
    return RefundOut(
        refund_id=refund.id,
        payment_id=refund.payment_id,
        amount=refund.amount,
        reason=refund.reason,
        status=refund.status,
        created_at=refund.created_at,
    )


async def refund(
    services: Services,
    principal: Principal,
    payment_id: str,
    body: RefundRequest,
    key_header: str | None,
    response: Response,
) -> RefundEnvelope:
    key = optional_idempotency_key(key_header)
    outcome = await services.refunds.refund(
        principal, payment_id, amount=body.amount, reason=body.reason, key=key
    )
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if outcome.refund.status == "pending":
        response.status_code = 202
        return RefundEnvelope(
            message="Refund is being processed", refund=_refund_out(outcome.refund)
        )
    return RefundEnvelope(refund=_refund_out(outcome.refund))


async def list_refunds(
    services: Services, principal: Principal, payment_id: str
) -> RefundListEnvelope:
    payment = await services.payments.get_for_reader(principal, payment_id)
    found = await services.refunds.list_for_reader(payment)
    return RefundListEnvelope(refunds=[_refund_out(r) for r in found])


async def stats(services: Services, user: Principal) -> StatsEnvelope:
    return StatsEnvelope(stats=Stats(**await services.stats.for_user(user.id)))


MAX_PAGE_SIZE = 100


def _parse_instant(field: str, raw: str, *, end_of_day: bool, services: Services) -> datetime:
    """An ISO date (a whole business day, inclusive) or date-time (UTC unless it says)."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            zone = services.settings.timezone
            return _utc(datetime.combine(day, time.max if end_of_day else time.min, zone))
        instant = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(field, "must be an ISO 8601 date or date-time") from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else _utc(instant)


def _utc(instant: datetime) -> datetime:
    """`instant` in UTC; one that falls outside the years 1-9999 there (0001-01-01 in Seoul,
    9999-12-31T23:00-05:00) is that end of the range, not an OverflowError."""
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if instant.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


INSTANT_QUERY: dict[str, Any] = {
    "max_length": 40,
    "description": "An ISO date (a whole business day in BUSINESS_TIMEZONE, inclusive) or "
    "date-time (UTC unless it names an offset)",
    # The whole schema (FastAPI's own anyOf of string and null would be replaced by this one).
    "json_schema_extra": {
        "anyOf": [
            {"type": "string", "format": "date"},
            {"type": "string", "format": "date-time", "maxLength": 40},
        ]
    },
}


def _invalid(field: str, message: str) -> UnprocessableError:
    return UnprocessableError(extra={"details": [{"field": field, "message": message}]})


def parse_history_query(
    services: Services,
    *,
    page: int,
    limit: int,
    status: PaymentStatus | None,
    start_date: str | None,
    end_date: str | None,
) -> HistoryQuery:
    # `?startDate=` is a value, and not a date: a 422, not a missing filter.
    start = (
        None
        if start_date is None
        else _parse_instant("startDate", start_date, end_of_day=False, services=services)
    )
    end = (
        None
        if end_date is None
        else _parse_instant("endDate", end_date, end_of_day=True, services=services)
    )
    # A range that ends before it starts is no bad value, only an empty one: it matches no
    # payment (as Stripe's created[gte] > created[lte] does), so each date alone is the rule.
    return HistoryQuery(
        page=page,
        limit=min(limit, MAX_PAGE_SIZE),
        status=status.value if status else None,
        start=start,
        end=end,
    )


async def history_query(
    services: ServicesDep,
    page: Annotated[int, Query(ge=1, le=MAX_QUERY_INTEGER)] = 1,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_QUERY_INTEGER, description="1-100; larger values are clamped to 100"),
    ] = 20,
    status: PaymentStatus | None = None,
    start_date: Annotated[str | None, Query(alias="startDate", **INSTANT_QUERY)] = None,
    end_date: Annotated[str | None, Query(alias="endDate", **INSTANT_QUERY)] = None,
) -> HistoryQuery:
    return parse_history_query(
        services, page=page, limit=limit, status=status, start_date=start_date, end_date=end_date
    )


History = Annotated[HistoryQuery, Depends(history_query)]
