"""Payments: what a service's domain answer becomes over HTTP — status codes, the
`Idempotent-Replayed` header, envelopes. The Idempotency-Key header is read in
`idempotency_keys.py`, a history's query in `history_query.py`, and the cached read's bytes are
shaped in `cached_read.py`."""

from __future__ import annotations

from fastapi import Request, Response

from payments_api.config.constants import PaymentStatus
from payments_api.controllers import cached_read
from payments_api.controllers.idempotency_keys import (
    optional_idempotency_key,
    required_idempotency_key,
)
from payments_api.models.payment import public_view
from payments_api.models.refund import Refund
from payments_api.schemas.payments import (
    CancelEnvelope,
    CursorPagination,
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
from payments_api.services.payment_failures import PaymentFailed
from payments_api.services.payment_history import HistoryQuery, Owner
from payments_api.services.payments import NewPayment
from payments_api.services.registry import Services

REPLAYED_HEADER = "Idempotent-Replayed"


async def create(
    services: Services,
    user: Principal,
    body: PaymentCreate,
    key_header: str | None,
    response: Response,
) -> PaymentEnvelope | PaymentReplayEnvelope:
    """201 completed (a manual capture: authorized), 202 pending (poll it), 200 a replay; a
    failed payment is its error (402 declined, 503 unreachable or never processed), replayed
    or not."""
    key = required_idempotency_key(key_header)
    try:
        created = await services.payments.create(
            user.id,
            key,
            NewPayment(
                amount=body.amount,
                merchant_id=body.merchant_id,
                payment_method=body.payment_method.value,
                product_name=body.product_name,
                currency=body.currency,
                merchant_order_id=body.merchant_order_id,
                metadata=body.metadata,
                capture_method=body.capture_method,
            ),
        )
    except PaymentFailed as failed:
        if failed.replayed:
            failed.headers[REPLAYED_HEADER] = "true"
        raise
    payment = PaymentOut.model_validate(public_view(created.payment))
    if created.replayed:
        response.headers[REPLAYED_HEADER] = "true"
        response.status_code = 200
        return PaymentReplayEnvelope(payment=payment)
    response.status_code = 202 if created.payment.status == PaymentStatus.PENDING else 201
    return PaymentEnvelope(payment=payment)


async def read(
    services: Services, principal: Principal, payment_id: str, request: Request
) -> Response:
    """The hot path: the cached JSON goes out as it was stored (controllers/cached_read.py)."""
    prefetched = getattr(request.state, "prefetched", None)
    payment = await services.payment_reads.read_json(principal, payment_id, prefetched)
    return Response(content=cached_read.envelope(payment), media_type="application/json")


async def history(
    services: Services,
    query: HistoryQuery,
    *,
    user_id: str | None = None,
    merchant_id: str | None = None,
) -> PaymentListEnvelope:
    """A page by number (its `pagination` has the counts and the next cursor), or a cursor
    page (`pagination` exactly `{hasMore, nextCursor, prevCursor}`)."""
    owner = (
        Owner("userId", user_id) if user_id is not None else Owner("merchantId", merchant_id or "")
    )
    found = await services.payment_history.page(owner, query)
    pagination: Pagination | CursorPagination
    if found.page is None:
        pagination = CursorPagination(
            has_more=found.has_more, next_cursor=found.next_cursor, prev_cursor=found.prev_cursor
        )
    else:
        total_pages = (found.total + query.limit - 1) // query.limit
        pagination = Pagination(
            current_page=found.page,
            total_pages=total_pages,
            total_count=found.total,
            has_next_page=found.page < total_pages,
            has_prev_page=found.page > 1,
            has_more=found.has_more,
            next_cursor=found.next_cursor,
        )
    return PaymentListEnvelope(
        payments=[PaymentOut.model_validate(public_view(p)) for p in found.payments],
        pagination=pagination,
    )


async def cancel(
    services: Services, caller: Principal, payment_id: str, reason: str
) -> CancelEnvelope:
    """A cancel returns what was charged (`refundAmount`): 0 for a voided authorization."""
    payment = await services.cancellations.cancel(caller, payment_id, reason)
    return CancelEnvelope(
        refund_info=RefundInfo(payment_id=payment.id, refund_amount=payment.captured_amount)
    )


async def capture(
    services: Services,
    caller: Principal,
    payment_id: str,
    amount: int | None,
    key_header: str | None,
    response: Response,
) -> PaymentEnvelope:
    """200 captured (completed); 202 while the gateway's answer is not in (still
    `authorized`: reconciliation asks again, the client polls)."""
    key = optional_idempotency_key(key_header)
    captured = await services.captures.capture(caller, payment_id, amount, key)
    if captured.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    if captured.payment.status == PaymentStatus.AUTHORIZED:
        response.status_code = 202
    return PaymentEnvelope(payment=PaymentOut.model_validate(public_view(captured.payment)))


def _refund_out(refund: Refund) -> RefundOut:
    return RefundOut(
        refund_id=refund.id,
        payment_id=refund.payment_id,
        amount=refund.amount,
        reason=refund.reason,
        status=refund.status,
        created_at=refund.created_at,
        metadata=refund.metadata,
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
        principal,
        payment_id,
        amount=body.amount,
        reason=body.reason,
        key=key,
        metadata=body.metadata,
        expected_available=body.expected_available_amount,
    )
    if outcome.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    if outcome.refund.status == "pending":
        response.status_code = 202
        return RefundEnvelope(
            message="Refund is being processed", refund=_refund_out(outcome.refund)
        )
    return RefundEnvelope(refund=_refund_out(outcome.refund))


async def list_refunds(
    services: Services, principal: Principal, payment_id: str
) -> RefundListEnvelope:
    payment = await services.payment_reads.get_for_reader(principal, payment_id)
    found = await services.refunds.list_for_reader(payment)
    return RefundListEnvelope(refunds=[_refund_out(r) for r in found])


async def stats(services: Services, user: Principal) -> StatsEnvelope:
    return StatsEnvelope(stats=Stats(**await services.stats.for_user(user.id)))
