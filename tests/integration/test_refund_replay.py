"""A refund that did not happen is never replayed as a success: its Idempotency-Key tries again
(the first attempt refunded nothing), and only a refund whose status is `succeeded` is answered
"Refund processed successfully"."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from payments_api.models import refund as refunds_model
from payments_api.models.refund import Refund
from payments_api.services.idempotency import fingerprint, key_scope
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from tests.fixtures.payments import (
    documents,
    open_shop_and_pay,
    read,
    sandbox_charge,
)
from tests.fixtures.reconciliation import (
    Clock,
    GatewayCut,
    answer_instead,
    reconcile_after,
    reconciler_for,
    sandbox_post,
)

REASON = "Customer returned the item"


async def refund_with_key(
    client: httpx.AsyncClient, headers: dict[str, str], payment_id: str, amount: int, key: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/payments/{payment_id}/refund",
        json={"amount": amount, "reason": REASON},
        headers={**headers, "Idempotency-Key": key},
    )


def gateway_refunds(app: FastAPI, payment_id: str) -> dict[str, int]:
    refunds: dict[str, int] = sandbox_charge(app, payment_id).refunds
    return refunds


async def test_a_refund_refused_for_an_unreachable_gateway_is_tried_again_with_its_key(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    cut = GatewayCut(app)
    cut.cut = True
    first = await refund_with_key(client, shop.merchant.headers, payment_id, 4_000, "rf-1")
    assert first.status_code == 503, first.text
    assert first.json()["error"] == "GATEWAY_UNAVAILABLE"
    cut.restore()

    again = await refund_with_key(client, shop.merchant.headers, payment_id, 4_000, "rf-1")

    assert again.status_code == 200, again.text
    body = again.json()
    assert body["message"] == "Refund processed successfully"
    assert body["refund"]["status"] == "succeeded"
    assert gateway_refunds(app, payment_id) == {body["refund"]["refundId"]: 4_000}
    assert (await read(client, shop.user.headers, payment_id))["refundedAmount"] == 4_000
    # The first attempt stays on record as failed; only one refund happened.
    statuses = sorted(r["status"] for r in await documents(app, "refunds", paymentId=payment_id))
    assert statuses == ["failed", "succeeded"]
    # From now on the key replays the refund that happened.
    replay = await refund_with_key(client, shop.merchant.headers, payment_id, 4_000, "rf-1")
    assert replay.status_code == 200, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["refund"]["refundId"] == body["refund"]["refundId"]
    assert len(gateway_refunds(app, payment_id)) == 1


async def test_a_refund_whose_process_died_before_reserving_is_tried_again_with_its_key(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    services = app.state.services
    scope = f"refund:merchant:{shop.merchant.merchant_id}"
    # What the dead request left: its refund recorded, nothing reserved, its key locked.
    created = utcnow() - reconcile_after(app) - timedelta(seconds=1)
    await refunds_model.insert(
        services.database,
        Refund(
            id=ids.refund_id(),
            payment_id=payment_id,
            user_id=shop.user.user_id,
            merchant_id=shop.merchant.merchant_id,
            amount=3_000,
            reason=REASON,
            status="pending",
            requested_by=f"merchant:{shop.merchant.merchant_id}",
            idempotency_scope=f"{scope}:rf-dead",
            request_fingerprint=fingerprint(
                {"paymentId": payment_id, "amount": 3_000, "reason": REASON}
            ),
            created_at=created,
            updated_at=created,
        ),
    )
    await reconciler_for(app, Clock(utcnow())).run_once()
    [dead] = await documents(app, "refunds", paymentId=payment_id)
    assert (dead["status"], dead["failureCode"]) == ("failed", "NOT_RESERVED")
    lock = f"idem:lock:{key_scope('refund', shop.merchant.merchant_id)}:rf-dead"
    await services.redis.delete(lock)  # its lock expired

    retried = await refund_with_key(client, shop.merchant.headers, payment_id, 3_000, "rf-dead")

    assert retried.status_code == 200, retried.text
    assert retried.json()["refund"]["status"] == "succeeded"
    assert retried.json()["refund"]["refundId"] != dead["_id"]
    assert gateway_refunds(app, payment_id) == {retried.json()["refund"]["refundId"]: 3_000}


async def test_a_pending_refund_the_gateway_then_refused_is_never_replayed_as_processed(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    lost = True
    answer_instead(app, "/refunds", 502, when=lambda: lost)  # the answer never comes back
    first = await refund_with_key(client, shop.merchant.headers, payment_id, 4_000, "rf-lost")
    assert first.status_code == 202, first.text
    assert first.json()["refund"]["status"] == "pending"
    lost = False
    # Meanwhile the charge is cancelled at the gateway, which then refuses the refund.
    cancelled = await sandbox_post(app, f"/v1/charges/{payment_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    later = Clock(utcnow() + reconcile_after(app) + timedelta(seconds=1))
    await reconciler_for(app, later).run_once()
    [refused] = await documents(app, "refunds", paymentId=payment_id)
    assert refused["status"] == "failed"

    replay = await refund_with_key(client, shop.merchant.headers, payment_id, 4_000, "rf-lost")

    assert replay.status_code == 409, replay.text
    assert replay.json()["error"] == "PAYMENT_NOT_REFUNDABLE"
    assert gateway_refunds(app, payment_id) == {}
