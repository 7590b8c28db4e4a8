"""The examples of the OpenAPI description, put in place once FastAPI has built it.

They are added here, not through FastAPI's `openapi_examples=`, because FastAPI writes the
description without its `None` values, examples included: a payment example would lose its
`null` fields, which its schema requires, and no longer be a value of it.
"""

from __future__ import annotations

import copy
from typing import Any

from payments_api.routes.payment_examples import CREATE_EXAMPLES, RESPONSE_EXAMPLES
from payments_api.routes.webhook_docs import EVENT_EXAMPLES, WEBHOOK_NAME, signature_examples
from payments_api.services.webhooks import SIGNATURE_HEADER

CREATE_PAYMENT = ("/api/v1/payments", "post")


def _json_media(holder: dict[str, Any]) -> dict[str, Any]:
    media: dict[str, Any] = holder["content"]["application/json"]
    return media


def describe_examples(document: dict[str, Any]) -> None:
    """Add to `document` the create-payment body and answer examples and the webhook's."""
    path, method = CREATE_PAYMENT
    create = document["paths"][path][method]
    _json_media(create["requestBody"])["examples"] = copy.deepcopy(CREATE_EXAMPLES)
    for status, example in RESPONSE_EXAMPLES.items():
        _json_media(create["responses"][str(status)])["example"] = copy.deepcopy(example)
    hook = document["webhooks"][WEBHOOK_NAME]["post"]
    _json_media(hook["requestBody"])["examples"] = copy.deepcopy(EVENT_EXAMPLES)
    for parameter in hook["parameters"]:
        if parameter["name"] == SIGNATURE_HEADER:
            parameter["examples"] = signature_examples()
