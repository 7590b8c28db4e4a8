"""Redaction: nothing secret leaves the process through a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import structlog

from payments_api.utils.logger import JSONLineHandler, configure_logging, stdlib_log_config
from payments_api.utils.redaction import REDACTED, redact, scrub_text
from tests.conftest import ADMIN_PASSWORD
from tests.fixtures.apps import LogCapture
from tests.fixtures.factories import create_merchant, register_user

CARD = "4111111111111111"  # Luhn-valid test card
MASKED_CARD = "************1111"
NOT_A_CARD = "4111111111111112"  # same length, fails the Luhn check


def run(event: dict[str, Any]) -> dict[str, Any]:
    return dict(redact(None, "info", event))


@pytest.mark.parametrize(
    "key", ["password", "accessToken", "apiKey", "webhookSecret", "authorization", "cookie"]
)
def test_sensitive_key_is_redacted_at_top_level(key: str) -> None:
    assert run({key: "s3cr3t-value"})[key] == REDACTED


@pytest.mark.parametrize(
    "key", ["password", "accessToken", "apiKey", "webhookSecret", "Authorization", "Cookie"]
)
def test_sensitive_key_is_redacted_at_any_depth(key: str) -> None:
    event = {"request": {"headers": {key: "s3cr3t-value"}}, "items": [{"inner": {key: "x"}}]}
    out = run(event)
    assert out["request"]["headers"][key] == REDACTED
    assert out["items"][0]["inner"][key] == REDACTED
    assert "s3cr3t-value" not in json.dumps(out)


def test_sensitive_key_with_a_structured_value_is_redacted_whole() -> None:
    out = run({"credentials": {"user": "a", "pin": "1234"}, "password": ["a", "b"]})
    assert out["password"] == REDACTED
    assert out["credentials"] == REDACTED


def test_ordinary_fields_are_kept() -> None:
    event = {"userId": "usr_01ABC", "amount": 15000, "email": "a@example.com", "ok": True}
    assert run(dict(event)) == event


def test_luhn_valid_card_number_is_masked_to_last_four() -> None:
    assert scrub_text(f"paid with {CARD} today") == f"paid with {MASKED_CARD} today"


@pytest.mark.parametrize(
    "grouped", ["4111 1111 1111 1111", "4111-1111-1111-1111"], ids=["spaces", "dashes"]
)
def test_grouped_card_number_is_masked_to_last_four(grouped: str) -> None:
    masked = scrub_text(f"card {grouped}.")
    assert masked == f"card {MASKED_CARD}."


def test_other_card_lengths_are_masked() -> None:
    amex = "378282246310005"  # 15 digits, Luhn-valid
    assert scrub_text(amex) == "*" * 11 + "0005"


def test_non_luhn_digit_run_is_left_alone() -> None:
    text = f"order {NOT_A_CARD} and phone 010-1234-5678"
    assert scrub_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"qty 2 {CARD}", f"qty 2 {MASKED_CARD}"),
        ("qty 2 4111 1111 1111 1111", f"qty 2 {MASKED_CARD}"),
        (f"{CARD} 7 items", f"{MASKED_CARD} 7 items"),
    ],
)
def test_card_number_beside_another_number_is_still_masked(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def test_card_number_in_a_nested_value_is_masked() -> None:
    out = run({"event": "charge", "meta": {"note": f"card {CARD}"}, "tags": [CARD]})
    assert out["meta"]["note"] == f"card {MASKED_CARD}"
    assert out["tags"] == [MASKED_CARD]


def test_api_key_in_text_is_masked() -> None:
    key = "sk_Zr4Xq8YbN2mP0vL7cT1sQw9eKj3Hd6Ua"
    masked = scrub_text(f"merchant used {key} to call")
    assert key not in masked
    assert "Zr4Xq8YbN2mP0vL7cT1sQw9eKj3Hd6Ua" not in masked
    assert masked.startswith("merchant used ")


def test_webhook_secret_in_text_is_masked() -> None:
    secret = "whsec_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    masked = scrub_text(f"signing with {secret}")
    assert "9f8e7d6c5b4a39281706f5e4d3c2b1a0" not in masked


def test_bearer_credential_in_text_is_masked() -> None:
    masked = scrub_text("header was Authorization: Bearer opaque-token-value-123 ok")
    assert "opaque-token-value-123" not in masked
    assert masked.startswith("header was Authorization: Bearer")


def test_jwt_in_text_is_masked() -> None:
    token = jwt.encode({"sub": "usr_01ABC", "exp": 2_000_000_000}, "k" * 32, algorithm="HS256")
    masked = scrub_text(f"token={token} rejected")
    assert token not in masked
    assert token.split(".")[2] not in masked


def test_jwt_in_the_log_message_is_masked() -> None:
    token = jwt.encode({"sub": "usr_01ABC"}, "k" * 32, algorithm="HS256")
    out = run({"event": f"could not decode {token}"})
    assert token not in out["event"]


@pytest.mark.parametrize("breaks", ["\n", "\r\n", "\r"])
def test_line_breaks_are_stripped(breaks: str) -> None:
    forged = f'bob{breaks}{{"level":"info","message":"admin logged in"}}'
    scrubbed = scrub_text(forged)
    assert "\n" not in scrubbed
    assert "\r" not in scrubbed
    assert scrubbed.startswith("bob")


def test_line_breaks_are_stripped_from_nested_values() -> None:
    out = run({"user": {"name": "eve\ninjected"}, "list": ["a\r\nb"]})
    assert out["user"]["name"] == "eve injected"
    assert "\n" not in out["list"][0]
    assert "\r" not in out["list"][0]


async def test_no_credential_reaches_the_log(logs: LogCapture, client: httpx.AsyncClient) -> None:
    user = await register_user(client, password="user-password-LEAKCHECK-1")
    me = await client.get("/api/v1/users/me", headers=user.headers)
    assert me.status_code == 200
    wrong = await client.post(
        "/api/v1/auth/token",
        json={"email": user.email, "password": "wrong-password-LEAKCHECK-2"},
    )
    assert wrong.status_code == 401
    merchant = await create_merchant(client)
    assert (await client.get("/api/v1/merchants/me", headers=merchant.headers)).status_code == 200

    text = logs.text
    assert text  # the requests above were logged
    for secret in (
        user.password,
        "wrong-password-LEAKCHECK-2",
        ADMIN_PASSWORD,
        user.token,
        merchant.api_key,
        merchant.api_key.removeprefix("sk_"),
        merchant.webhook_secret,
        merchant.webhook_secret.removeprefix("whsec_"),
    ):
        assert secret not in text


async def test_failed_login_is_logged_as_a_security_event(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    user = await register_user(client)
    await client.post("/api/v1/auth/token", json={"email": user.email, "password": "not-it-123"})
    security = [record for record in logs.records if record.get("security") is True]
    failed = [record for record in security if record["message"] == "login failed"]
    assert len(failed) == 1
    assert failed[0]["level"] == "warning"
    assert "not-it-123" not in json.dumps(security)


async def test_every_log_line_carries_the_common_fields(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    await client.get("/health")
    records = logs.records
    assert records
    for record in records:
        assert {
            "@timestamp",
            "level",
            "message",
            "service",
            "environment",
            "version",
            "pid",
        } <= set(record)
        assert record["service"] == "payments-api"
        assert record["environment"] == "test"
        assert record["@timestamp"].endswith("Z")


# --- standard-library records (uvicorn's own) as the same JSON lines ------------------------


@pytest.fixture
def stdlib_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A `logging` logger writing through JSONLineHandler, and the stream its lines go to."""
    stream = io.StringIO()
    configure_logging("info", "test", stream=stream)
    logger = logging.getLogger("uvicorn.error.test-only")
    handler = JSONLineHandler()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        configure_logging("info", "test")


def test_a_stdlib_record_is_a_json_line_with_the_common_fields(
    stdlib_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = stdlib_logger
    structlog.contextvars.bind_contextvars(requestId="req-1")
    try:
        logger.warning("Invalid %s received from %s", "request", "Bearer abc.def-123")
    finally:
        structlog.contextvars.clear_contextvars()
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "Invalid request received from Bearer [REDACTED]"
    assert record["level"] == "warning"
    assert record["component"] == "uvicorn.error.test-only"
    assert record["requestId"] == "req-1"
    assert record["environment"] == "test"
    assert {"@timestamp", "service", "version", "pid"} <= set(record)


def test_a_stdlib_exception_is_one_json_line_with_its_traceback(
    stdlib_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = stdlib_logger
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("Exception in ASGI application")
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "error"
    assert "RuntimeError: boom" in record["exception"]


def test_the_uvicorn_log_config_keeps_its_access_log_off() -> None:
    config = stdlib_log_config("debug")
    assert config["loggers"]["uvicorn"]["level"] == "DEBUG"
    access = config["loggers"]["uvicorn.access"]
    assert access["handlers"] == []
    assert access["propagate"] is False


# --- the access line, built without the processor chain -------------------------------------


async def test_access_line_masks_what_the_client_sent(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    """Path, user agent and request id are the client's words: redacted like any field."""
    token = jwt.encode({"sub": "usr_x", "exp": 4102444800}, "k" * 32, algorithm="HS256")
    response = await client.get(
        f"/api/v1/payments/{CARD}",
        headers={
            "User-Agent": f"probe/1.0 Bearer {token}",
            "X-Request-ID": f"order-{CARD}",
        },
    )
    assert response.headers["x-request-id"] == f"order-{CARD}"  # the client's own, echoed
    [line] = [record for record in logs.records if record["message"] == "request completed"]
    assert line["path"] == f"/api/v1/payments/{MASKED_CARD}"
    assert line["userAgent"] == f"probe/1.0 Bearer {REDACTED}"
    assert line["requestId"] == f"order-{MASKED_CARD}"
    assert CARD not in logs.text
    assert token not in logs.text


async def test_access_line_follows_the_log_level(client: httpx.AsyncClient) -> None:
    stream = io.StringIO()
    configure_logging("warning", "test", stream=stream)
    try:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/no/such/route")).status_code == 404
    finally:
        configure_logging("info", "test")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["message"] == "request completed"]
    assert [(line["path"], line["level"]) for line in access] == [("/no/such/route", "warning")]


def test_a_line_orjson_refuses_is_still_one_json_line() -> None:
    """An integer beyond 64 bits or a lone surrogate (a JSON `\\ud800` escape in a body) goes
    through the standard library instead of losing the line."""
    stream = io.StringIO()
    configure_logging("info", "test", stream=stream)
    try:
        structlog.get_logger().info("odd values", big=2**70, text="a\ud800b")
    finally:
        configure_logging("info", "test")
    written = stream.getvalue()
    written.encode("utf-8")  # what standard output must be able to write: no raw surrogate
    [line] = [json.loads(text) for text in written.splitlines()]
    assert line["big"] == 2**70
    assert line["text"] == "a\ud800b"
