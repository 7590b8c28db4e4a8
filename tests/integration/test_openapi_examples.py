"""The examples of the OpenAPI description are real: each is a value of its own schema (the
model is built from it, as the service would parse it), the sandbox's magic amounts are the
ones the sandbox acts on, and the webhook example is shaped and signed as a real delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from payments_api.config.constants import EventType
from payments_api.models.payment import Payment, Transition
from payments_api.routes.webhook_docs import (
    COMPLETED_EVENT,
    EXAMPLE_SECRET,
    EXAMPLE_TIMESTAMP,
    WEBHOOK_NAME,
    raw_body,
)
from payments_api.sandbox_gateway import app as sandbox_module
from payments_api.sandbox_gateway.endings import ENDINGS, ending_of
from payments_api.schemas.errors import error_model
from payments_api.schemas.events import WebhookEvent
from payments_api.schemas.payments import PaymentCreate, PaymentEnvelope, PaymentReplayEnvelope
from payments_api.services.events import payment_event
from payments_api.services.payment_failures import PaymentDeclined
from payments_api.services.webhooks import SIGNATURE_HEADER, signature_header

MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        PaymentCreate,
        PaymentEnvelope,
        PaymentReplayEnvelope,
        WebhookEvent,
        error_model(PaymentDeclined),
    )
}
"""The model of each schema an example is given for, by the schema's name."""


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for section in ("paths", "webhooks"):
        for path, item in document.get(section, {}).items():
            for method, operation in item.items():
                yield f"{section} {method.upper()} {path}", operation


def body_examples(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Every example of a JSON body in `document`: (where, its schema, the value)."""
    for name, operation in operations(document):
        holders = [("request", operation.get("requestBody", {}))]
        holders += [(status, answer) for status, answer in operation["responses"].items()]
        for place, holder in holders:
            media = holder.get("content", {}).get("application/json", {})
            if "example" in media:
                yield f"{name} {place}", media["schema"], media["example"]
            for key, example in media.get("examples", {}).items():
                yield f"{name} {place} {key}", media["schema"], example["value"]


def schema_models(schema: dict[str, Any]) -> list[type[BaseModel]]:
    refs = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    names = [ref["$ref"].rsplit("/", 1)[-1] for ref in refs if "$ref" in ref]
    assert names, f"an example for a schema with no model: {schema}"
    missing = [name for name in names if name not in MODELS]
    assert missing == [], "an example whose schema has no model here to build"
    return [MODELS[name] for name in names]


def is_value_of(models: list[type[BaseModel]], value: Any) -> bool:
    """Whether any of `models` parses `value` sent as JSON (strict ints and all)."""
    for model in models:
        try:
            model.model_validate_json(json.dumps(value))
        except ValidationError:
            continue
        return True
    return False


async def test_every_body_example_is_a_value_of_its_schema(openapi: dict[str, Any]) -> None:
    examples = list(body_examples(openapi))
    wrong = [
        where for where, schema, value in examples if not is_value_of(schema_models(schema), value)
    ]

    assert len(examples) >= 12  # 6 bodies and 4 answers of create-payment, 2 webhook events
    assert wrong == []


def create_payment(document: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"]["/api/v1/payments"]["post"]
    return operation


async def test_create_payment_shows_a_body_and_every_answer_it_succeeds_or_declines_with(
    openapi: dict[str, Any],
) -> None:
    operation = create_payment(openapi)
    examples = operation["requestBody"]["content"]["application/json"]["examples"]

    assert {"approved", "manualCapture"} <= set(examples)
    for status in ("200", "201", "202", "402"):
        assert "example" in operation["responses"][status]["content"]["application/json"], status
    answers = operation["responses"]
    assert answers["201"]["content"]["application/json"]["example"]["payment"]["status"] == (
        "completed"
    )
    assert answers["202"]["content"]["application/json"]["example"]["payment"]["status"] == (
        "pending"
    )


async def test_the_magic_amounts_are_the_sandboxs_own(openapi: dict[str, Any]) -> None:
    operation = create_payment(openapi)
    examples = operation["requestBody"]["content"]["application/json"]["examples"].values()
    magic = {
        ending_of(example["value"]["amount"]): example
        for example in examples
        if example["summary"].startswith("Sandbox")
    }

    assert set(magic) == {ending.digits for ending in ENDINGS}
    for ending in ENDINGS:
        assert f"| `{ending.digits:03d}` | {ending.sandbox_does} |" in operation["description"]
        assert ending.sandbox_does in magic[ending.digits]["description"]
    ordinary = [e["value"]["amount"] for e in examples if not e["summary"].startswith("Sandbox")]
    assert ordinary
    assert not {ending_of(amount) for amount in ordinary} & set(magic)


SANDBOX_TIMEOUT = 5.0
SANDBOX_RECONCILE_AFTER = 60.0
SANDBOX_DOES: dict[int, tuple[int, str | None, float | None]] = {
    402: (402, "declined", None),
    408: (200, "approved", SANDBOX_TIMEOUT + 2),
    409: (200, "approved", SANDBOX_TIMEOUT + SANDBOX_RECONCILE_AFTER + 3),
    503: (503, None, None),
}
"""What the sandbox is seen to do for each documented ending: its status, the charge's status,
and how long it waits before it charges or answers."""


async def test_the_sandbox_does_what_each_documented_ending_says(
    openapi: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(sandbox_module, "asyncio", SimpleNamespace(sleep=sleep))
    sandbox = sandbox_module.create_sandbox_app(SANDBOX_TIMEOUT, SANDBOX_RECONCILE_AFTER)
    examples = create_payment(openapi)["requestBody"]["content"]["application/json"]["examples"]
    seen = {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox), base_url="http://sandbox"
    ) as http:
        for key, example in examples.items():
            amount = example["value"]["amount"]
            waits.clear()
            answer = await http.post(
                "/v1/charges", json={"paymentId": f"pay_{key}", "amount": amount}
            )
            charge = answer.json().get("status") if answer.status_code != 503 else None
            seen[ending_of(amount)] = (answer.status_code, charge, waits[0] if waits else None)

    approved = {ending for ending in seen if ending not in SANDBOX_DOES}
    assert approved, "no example of an ordinary amount"
    assert {ending: seen[ending] for ending in approved} == dict.fromkeys(
        approved, (200, "approved", None)
    )
    assert {ending: seen[ending] for ending in SANDBOX_DOES} == SANDBOX_DOES


def real_envelope() -> dict[str, Any]:
    """The body of a real delivery: the event the service builds for a completed payment."""
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    stored = {
        "_id": "pay_01M8ZDBPYYWE57HHGGV0C0Q334",
        "userId": "usr_01M8ZDBPYY2ATZZAN665236ATJ",
        "merchantId": "mch_01M8ZDBPYY4PV85ZZYJ9T13TPN",
        "amount": 15000,
        "currency": "KRW",
        "paymentMethod": "card",
        "productName": "Coffee beans",
        "status": "pending",
        "idempotencyKey": "order-1001",
        "requestFingerprint": "f",
        "holdDay": "2026-12-01",
        "createdAt": now,
        "updatedAt": now,
    }
    before = Payment.model_validate(stored)
    after = Payment.model_validate(
        {**stored, "status": "completed", "capturedAmount": 15000, "eventSequence": 1}
    )
    event = payment_event(EventType.PAYMENT_COMPLETED, Transition(before, after, {}), now)
    envelope: dict[str, Any] = json.loads(raw_body(event.envelope()))
    return envelope


FREE_FORM = frozenset({"metadata"})
"""Objects whose keys are the client's own."""


def shape(value: Any) -> Any:
    """The keys of `value`, nested: what two bodies must share to be of one kind."""
    if isinstance(value, dict):
        return {key: None if key in FREE_FORM else shape(inner) for key, inner in value.items()}
    return None


async def test_the_webhook_example_has_the_shape_of_a_real_delivery(
    openapi: dict[str, Any],
) -> None:
    hook = openapi["webhooks"][WEBHOOK_NAME]["post"]
    real = real_envelope()
    examples = hook["requestBody"]["content"]["application/json"]["examples"]

    WebhookEvent.model_validate_json(json.dumps(real))
    assert examples
    for example in examples.values():
        assert shape(example["value"]) == shape(real)


async def test_the_webhook_signature_example_is_the_delivery_codes_own(
    openapi: dict[str, Any],
) -> None:
    hook = openapi["webhooks"][WEBHOOK_NAME]["post"]
    [header] = [p for p in hook["parameters"] if p["in"] == "header"]
    documented = hook["requestBody"]["content"]["application/json"]["examples"]["completed"]

    assert header["name"] == SIGNATURE_HEADER
    assert header["required"] is True
    assert documented["value"] == COMPLETED_EVENT
    expected = signature_header([EXAMPLE_SECRET], EXAMPLE_TIMESTAMP, raw_body(COMPLETED_EVENT))
    assert header["examples"]["completed"]["value"] == expected
    assert EXAMPLE_SECRET in header["description"]


async def test_the_webhook_answers_mean_what_the_dispatcher_does(
    openapi: dict[str, Any],
) -> None:
    answers = openapi["webhooks"][WEBHOOK_NAME]["post"]["responses"]

    assert set(answers) == {"200", "default"}
    assert "10 s" in answers["200"]["description"]
    assert "24 hours" in answers["default"]["description"]
