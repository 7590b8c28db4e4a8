"""The webhook a merchant receives, as an OpenAPI 3.1 `webhooks` entry: the event body, its
signature header, and what the answer means to the sender (services/events.py delivers it,
services/webhooks.py signs and posts it), with examples (placed by openapi_examples.py).

The example signature is the delivery code's own signing of the example body with the example
secret, so a receiver can check its verification code against it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import FastAPI, Header, Response

from payments_api.routes.payment_examples import COMPLETED_PAYMENT, DECLINED_PAYMENT
from payments_api.schemas.events import WebhookEvent
from payments_api.services.webhooks import SIGNATURE_HEADER, signature_header

WEBHOOK_NAME = "paymentEvent"
EXAMPLE_SECRET = "whsec_example_secret_do_not_use"  # noqa: S105 - a documented example
EXAMPLE_TIMESTAMP = 1764581400
"""2026-12-01T09:30:00Z in Unix seconds."""

COMPLETED_EVENT: dict[str, Any] = {
    "id": "evt_01M8ZDBPYYGT737XYK9XTF8VC9",
    "type": "payment.completed",
    "createdAt": "2026-12-01T09:30:00.412Z",
    "data": {"payment": COMPLETED_PAYMENT, "sequence": 1, "previousStatus": "pending"},
}
FAILED_EVENT: dict[str, Any] = {
    "id": "evt_01M8ZDBPYZ3N5QW8ERT2YV6KJM",
    "type": "payment.failed",
    "createdAt": "2026-12-01T09:30:00.215Z",
    "data": {"payment": DECLINED_PAYMENT, "sequence": 1, "previousStatus": "pending"},
}
EVENT_EXAMPLES: dict[str, dict[str, Any]] = {
    "completed": {"summary": "A payment completed", "value": COMPLETED_EVENT},
    "failed": {"summary": "A payment was declined", "value": FAILED_EVENT},
}


def signature_examples() -> dict[str, dict[str, Any]]:
    return {
        "completed": {
            "summary": "The `completed` example's signature",
            "value": example_signature(COMPLETED_EVENT),
        }
    }


def raw_body(event: dict[str, Any]) -> bytes:
    """The bytes a delivery of `event` carries (compact JSON): what the signature covers."""
    return json.dumps(event, separators=(",", ":")).encode()


def example_signature(event: dict[str, Any]) -> str:
    """The header a delivery of `event` would carry, signed by the delivery code itself."""
    return signature_header([EXAMPLE_SECRET], EXAMPLE_TIMESTAMP, raw_body(event))


SIGNATURE_DESCRIPTION = (
    '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed by webhookSecret>`. '
    "While a rotated secret is in its 24-hour grace period a second `v1`, keyed by the old "
    "secret, follows: accept the delivery when any `v1` matches. Compute it over the raw body "
    "bytes as received, and refuse a `t` far from your clock. The example is signed with "
    f"the secret `{EXAMPLE_SECRET}` over the `completed` example sent as compact JSON."
)
DELIVERY_DESCRIPTION = (
    "Each change of a payment's state is `POST`ed to the merchant's `webhookUrl`, signed. "
    "Delivery is at least once and may be out of order: dedupe by `id`, and drop an event whose "
    "`data.sequence` is not above the last one seen for the payment."
)


def install(app: FastAPI) -> None:
    """Declare the webhook in `app`'s description (nothing is routed: it is a call we make)."""

    @app.webhooks.post(
        WEBHOOK_NAME,
        summary="A payment changed state",
        description=DELIVERY_DESCRIPTION,
        response_class=Response,
        responses={
            200: {"description": "Any 2xx within 10 s acknowledges the delivery"},
            "default": {
                "description": "Any other answer, or none within 10 s: retried with "
                "exponential backoff (the first retry within 30 s) for at least 24 hours, then "
                "the event is `dead`"
            },
        },
    )
    async def payment_event(
        body: WebhookEvent,
        signature: Annotated[
            str, Header(alias=SIGNATURE_HEADER, description=SIGNATURE_DESCRIPTION)
        ],
    ) -> None:
        """Never called: only described."""
