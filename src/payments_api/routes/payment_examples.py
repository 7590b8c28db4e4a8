"""Examples of the create-payment operation in the OpenAPI description (what /docs shows): its
body, the sandbox gateway's magic amounts, and its answers (placed by openapi_examples.py).

Each is a real value of its schema (tests/integration/test_openapi_examples.py builds the
models from them), and the magic amounts come from the sandbox's own table
(`sandbox_gateway/endings.py`), with what the service answers for each.
"""

from __future__ import annotations

from typing import Any

from payments_api.sandbox_gateway.endings import (
    DECLINED,
    ENDINGS,
    LATE,
    SLOW,
    UNAVAILABLE,
)

MERCHANT_ID = "mch_01M8ZDBPYY4PV85ZZYJ9T13TPN"
USER_ID = "usr_01M8ZDBPYY2ATZZAN665236ATJ"
PAYMENT_ID = "pay_01M8ZDBPYYWE57HHGGV0C0Q334"
CREATED_AT = "2026-12-01T09:30:00.000Z"
MAGIC_BASE = 10_000
"""A magic example's amount is this plus its ending (10402 ends in 402)."""

SERVICE_ANSWERS: dict[int, str] = {
    DECLINED: "402 `PAYMENT_DECLINED`: the payment is `failed`, `failureCode` `CARD_DECLINED`",
    SLOW: "202 `pending` after `GATEWAY_TIMEOUT_SECONDS`; reconciliation later finds the "
    "charge and completes the payment",
    LATE: "202 `pending`; reconciliation finds no charge yet and reverses it, so the late "
    "request is refused and the payment fails `NOT_CHARGED`: nothing is charged",
    UNAVAILABLE: "202 `pending` (a 5xx leaves the outcome unknown); reconciliation reverses it "
    "and the payment fails `NOT_CHARGED`: nothing is charged",
}
"""What the service answers for each magic ending, by the ending."""

APPROVED_BODY = {
    "amount": 15000,
    "merchantId": MERCHANT_ID,
    "paymentMethod": "card",
    "productName": "Iced americano x3",
    "currency": "KRW",
    "merchantOrderId": "order-1001",
    "metadata": {"table": "7"},
}


def _magic_example(digits: int, name: str, sandbox_does: str) -> dict[str, Any]:
    amount = MAGIC_BASE + digits
    return {
        "summary": f"Sandbox: an amount ending in {digits:03d} ({name})",
        "description": f"The sandbox gateway {sandbox_does}. The service answers "
        f"{SERVICE_ANSWERS[digits]}.",
        "value": {
            "amount": amount,
            "merchantId": MERCHANT_ID,
            "paymentMethod": "card",
            "productName": f"Sandbox {name}",
        },
    }


CREATE_EXAMPLES: dict[str, dict[str, Any]] = {
    "approved": {
        "summary": "A payment, charged at once",
        "description": "On the sandbox gateway an amount with no magic ending is approved: "
        "201, `completed`.",
        "value": APPROVED_BODY,
    },
    "manualCapture": {
        "summary": "Authorize now, capture later",
        "description": "201, `authorized`: nothing is charged until "
        "`POST /api/v1/payments/{paymentId}/capture`.",
        "value": {
            "amount": 120000,
            "merchantId": MERCHANT_ID,
            "paymentMethod": "kakaopay_money",
            "productName": "Hotel stay, 1 night",
            "captureMethod": "manual",
        },
    },
    **{
        ending.name: _magic_example(ending.digits, ending.name, ending.sandbox_does)
        for ending in ENDINGS
    },
}

CREATE_DESCRIPTION = (
    "Charges the user for a merchant, once per `Idempotency-Key`.\n\n"
    "**Sandbox gateway** (no `GATEWAY_URL`): it answers by the last three digits of the "
    "amount.\n\n| amount ends in | the sandbox | the service answers |\n|---|---|---|\n"
    + "".join(
        f"| `{ending.digits:03d}` | {ending.sandbox_does} | {SERVICE_ANSWERS[ending.digits]} |\n"
        for ending in ENDINGS
    )
    + "| anything else | approves it, with a `transactionId` | 201 `completed` (`authorized` "
    "with `captureMethod` `manual`) |\n"
)

COMPLETED_PAYMENT: dict[str, Any] = {
    "paymentId": PAYMENT_ID,
    "userId": USER_ID,
    "merchantId": MERCHANT_ID,
    "amount": 15000,
    "currency": "KRW",
    "paymentMethod": "card",
    "productName": "Iced americano x3",
    "status": "completed",
    "transactionId": "gtx_01M8ZDBPYY4K59T4SG1CK07E2C",
    "refundedAmount": 0,
    "failureCode": None,
    "failureMessage": None,
    "cancelReason": None,
    "createdAt": CREATED_AT,
    "updatedAt": "2026-12-01T09:30:00.412Z",
    "completedAt": "2026-12-01T09:30:00.412Z",
    "cancelledAt": None,
    "merchantOrderId": "order-1001",
    "metadata": {"table": "7"},
    "captureMethod": "automatic",
    "capturedAmount": 15000,
    "authorizationExpiresAt": None,
}
PENDING_PAYMENT = {
    **COMPLETED_PAYMENT,
    "amount": MAGIC_BASE + SLOW,
    "productName": "Sandbox slowGateway",
    "status": "pending",
    "transactionId": None,
    "updatedAt": CREATED_AT,
    "completedAt": None,
    "merchantOrderId": None,
    "metadata": {},
    "capturedAmount": 0,
}
DECLINED_PAYMENT = {
    **PENDING_PAYMENT,
    "amount": MAGIC_BASE + DECLINED,
    "productName": "Sandbox declined",
    "status": "failed",
    "failureCode": "CARD_DECLINED",
    "failureMessage": "The card was declined by the issuer",
    "updatedAt": "2026-12-01T09:30:00.215Z",
}

RESPONSE_EXAMPLES: dict[int, dict[str, Any]] = {
    201: {"success": True, "payment": COMPLETED_PAYMENT},
    200: {"success": True, "payment": COMPLETED_PAYMENT, "message": "Payment already processed"},
    202: {"success": True, "payment": PENDING_PAYMENT},
    402: {
        "error": "PAYMENT_DECLINED",
        "message": "The card was declined by the issuer",
        "requestId": "01M8ZDCWMTVB7RN907W3W2MZKE",
        "payment": DECLINED_PAYMENT,
    },
}
"""One example answer per status, by status."""
