"""Schemathesis hooks for `test_schemathesis.py` (loaded through SCHEMATHESIS_HOOKS).

`filter_failure` drops a "schema-valid request rejected" failure (ST202,
positive_data_acceptance) only when the 422 says exactly why, and the reason is one the OpenAPI
description cannot express. Every other failure, and every other 422, stands. `before_call`
keeps drawn values valid or invalid as they were, only fresher (idempotency keys) or local
(webhook URLs).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import schemathesis
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AnyHttpUrl, TypeAdapter, ValidationError

from payments_api.controllers.idempotency_keys import optional_idempotency_key
from payments_api.errors import BadRequestError

REJECTED_POSITIVE_DATA = "ST202"

STATE_RULES = frozenset({"DAILY_LIMIT_EXCEEDED", "REFUND_EXCEEDS_AVAILABLE", "INVALID_CURSOR"})
"""The contract's 422s for a well-formed request that the current state refuses: what the user
spent today, what is left to refund, which ids are the caller's (a history's or an event
list's cursor) — and query parameters that exclude each other (two cursors, a cursor and
`page`), which OpenAPI's parameters cannot express. No schema can say them. Not here, so
still failures: AMOUNT_TOO_LARGE (the test's server allows the schema's largest amount) and
IDEMPOTENCY_KEY_REUSED (every schema-valid key is made unique below)."""

NOT_AN_INTEGER = "Input should be a valid integer"
SPECIAL_USE_EMAIL = "special-use or reserved name"


def _at(body: Any, field: str) -> Any:
    """The value at a detail's dotted `field` ("amount", "metadata.key", "items.0")."""
    value = body
    for part in field.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _integral_float(body: Any, detail: dict[str, Any]) -> bool:
    # Known false positive: JSON Schema counts 1.0 as an integer, so it is generated as valid
    # data for `type: integer`; the contract refuses a float amount or limit (a 422).
    value = _at(body, str(detail.get("field", "")))
    return (
        detail.get("message") == NOT_AN_INTEGER and isinstance(value, float) and value.is_integer()
    )


def _special_use_email(body: Any, detail: dict[str, Any]) -> bool:
    # Known false positive: `format: email` allows any domain, but email-validator refuses
    # the special-use ones (RFC 6761: .test, .invalid, .localhost, ...), as it should.
    value = _at(body, str(detail.get("field", "")))
    if not isinstance(value, str) or SPECIAL_USE_EMAIL not in str(detail.get("message")):
        return False
    domain = value.rpartition("@")[2].lower().rstrip(".")
    return any(domain == name or domain.endswith(f".{name}") for name in SPECIAL_USE_DOMAIN_NAMES)


def explained(body: Any, answer: Any) -> bool:
    """Whether a 422 answer to schema-valid data is one of the reasons above, and only those."""
    if not isinstance(answer, dict):
        return False
    if answer.get("error") in STATE_RULES:
        return True
    details = answer.get("details")
    if answer.get("error") != "VALIDATION_ERROR" or not isinstance(details, list) or not details:
        return False
    return all(
        isinstance(detail, dict)
        and (_integral_float(body, detail) or _special_use_email(body, detail))
        for detail in details
    )


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep a failure unless it is a rejected-positive-data 422 that `explained` accounts for."""
    if getattr(failure, "code", None) != REJECTED_POSITIVE_DATA or response.status_code != 422:
        return True
    try:
        answer = response.json()
    except ValueError:
        return True
    return not explained(case.body, answer)


_keys = itertools.count(1)
_URL = TypeAdapter(AnyHttpUrl)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Two changes to what is sent, each keeping a value valid or invalid as it was drawn:

    - a valid Idempotency-Key is sent as a fresh one (deterministically: a counter). Every
      phase repeats a handful of short keys, and a key reused with another body is the
      contract's 422 IDEMPOTENCY_KEY_REUSED, so nearly every create would stop there instead
      of reaching the gateway. Malformed keys are sent as drawn (they must be a 400);
    - a valid webhookUrl becomes SCHEMATHESIS_WEBHOOK_URL, a closed port on 127.0.0.1: outside
      production any URL is accepted, and the server's worker would deliver events to it.
      Nothing may leave the machine."""
    headers = case.headers
    key = headers.get("Idempotency-Key") if headers else None
    if isinstance(key, str):
        try:
            optional_idempotency_key(key)
        except BadRequestError:
            pass
        else:
            headers["Idempotency-Key"] = f"schemathesis-{next(_keys)}"
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("webhookUrl"), str):
        try:
            _URL.validate_python(body["webhookUrl"])
        except ValidationError:
            return
        body["webhookUrl"] = os.environ["SCHEMATHESIS_WEBHOOK_URL"]
