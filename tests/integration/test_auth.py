"""Access tokens, and how each kind of credential is told apart and refused."""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from payments_api.config.settings import Settings
from tests.fixtures.apps import LogCapture, running
from tests.fixtures.factories import bearer, create_merchant, register_user

UNKNOWN_USER_ID = "usr_01HZZZZZZZZZZZZZZZZZZZZZZZ"


def secret_of(settings: Settings) -> str:
    assert settings.jwt_secret is not None
    return settings.jwt_secret.get_secret_value()


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_for(user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


# --- issuing tokens -------------------------------------------------------------------------


async def test_token_answers_with_a_bearer_token(client: httpx.AsyncClient) -> None:
    user = await register_user(client)

    response = await client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": user.password}
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "accessToken", "tokenType", "expiresIn"}
    assert body["success"] is True
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 900
    assert isinstance(body["accessToken"], str)
    assert body["accessToken"]


async def test_token_is_an_hs256_jwt_for_the_user(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user = await register_user(client)
    before = int(time.time())

    response = await client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": user.password}
    )

    after = int(time.time())
    token = response.json()["accessToken"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, secret_of(settings), algorithms=["HS256"])
    assert claims["sub"] == user.user_id
    assert before + 900 <= claims["exp"] <= after + 900


async def test_token_lifetime_follows_the_setting(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(access_token_ttl_seconds=120)
    async with running(settings) as (_, http):
        user = await register_user(http)
        before = int(time.time())
        response = await http.post(
            "/api/v1/auth/token", json={"email": user.email, "password": user.password}
        )
        after = int(time.time())

    body = response.json()
    assert body["expiresIn"] == 120
    claims = jwt.decode(body["accessToken"], secret_of(settings), algorithms=["HS256"])
    assert before + 120 <= claims["exp"] <= after + 120


async def test_token_login_ignores_the_case_of_the_email(client: httpx.AsyncClient) -> None:
    user = await register_user(client)

    response = await client.post(
        "/api/v1/auth/token", json={"email": user.email.upper(), "password": user.password}
    )

    assert response.status_code == 200


async def test_issued_token_opens_the_users_profile(client: httpx.AsyncClient) -> None:
    user = await register_user(client)

    response = await client.get("/api/v1/users/me", headers=user.headers)

    assert response.status_code == 200
    assert response.json()["user"]["userId"] == user.user_id


async def test_unknown_email_and_wrong_password_answer_identically(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)

    unknown = await client.post(
        "/api/v1/auth/token", json={"email": "nobody@example.com", "password": user.password}
    )
    wrong = await client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": "wrong-password-1"}
    )

    assert unknown.status_code == wrong.status_code == 401
    unknown_body, wrong_body = unknown.json(), wrong.json()
    assert unknown_body["error"] == "INVALID_CREDENTIALS"
    assert unknown_body["requestId"] != wrong_body["requestId"]
    del unknown_body["requestId"], wrong_body["requestId"]
    assert unknown_body == wrong_body
    assert unknown.headers.get("www-authenticate") == wrong.headers.get("www-authenticate")


async def test_failed_login_is_logged_as_a_security_event_without_the_password(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    user = await register_user(client)

    await client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": "guessed-password-9"}
    )

    failures = [r for r in logs.records if r.get("security") is True and "login" in r["message"]]
    assert failures
    assert failures[0]["level"] == "warning"
    assert "guessed-password-9" not in logs.text


async def test_successful_login_logs_no_security_event(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    user = await register_user(client)
    logs.stream.truncate(0)
    logs.stream.seek(0)

    response = await client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": user.password}
    )

    assert response.status_code == 200, response.text
    records = logs.records
    assert [
        r
        for r in records
        if r.get("message") == "request completed"
        and r.get("method") == "POST"
        and r.get("path") == "/api/v1/auth/token"
        and r.get("statusCode") == 200
    ], "the login's request was not logged"
    assert not [r for r in records if r.get("security") is True]
    assert user.password not in logs.text


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com"},
        {"password": "whatever-password"},
        {"email": "a@example.com", "password": 12345678},
    ],
)
async def test_token_with_a_malformed_body_is_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/auth/token", json=body)

    assert response.status_code == 422
    assert response.json()["error"] == "VALIDATION_ERROR"


# --- refused credentials --------------------------------------------------------------------


def _no_header(settings: Settings, user_id: str) -> dict[str, str]:
    return {}


def _basic(settings: Settings, user_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(b"user:pass").decode()}


def _bare_bearer(settings: Settings, user_id: str) -> dict[str, str]:
    return {"Authorization": "Bearer"}


def _garbage(settings: Settings, user_id: str) -> dict[str, str]:
    return bearer("not-a-jwt-at-all")


def _raw_token(settings: Settings, user_id: str) -> dict[str, str]:
    """A valid token without the `Bearer` scheme."""
    token = jwt.encode(claims_for(user_id), secret_of(settings), algorithm="HS256")
    return {"Authorization": token}


def _expired(settings: Settings, user_id: str) -> dict[str, str]:
    now = int(time.time())
    claims = claims_for(user_id, iat=now - 3600, exp=now - 60)
    return bearer(jwt.encode(claims, secret_of(settings), algorithm="HS256"))


def _other_secret(settings: Settings, user_id: str) -> dict[str, str]:
    other = "another-secret-that-is-long-enough-too"
    return bearer(jwt.encode(claims_for(user_id), other, algorithm="HS256"))


def _alg_none(settings: Settings, user_id: str) -> dict[str, str]:
    header = _b64({"alg": "none", "typ": "JWT"})
    return bearer(f"{header}.{_b64(claims_for(user_id))}.")


def _hs512(settings: Settings, user_id: str) -> dict[str, str]:
    with warnings.catch_warnings():  # the test secret is short for HS512; irrelevant here
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        token = jwt.encode(claims_for(user_id), secret_of(settings), algorithm="HS512")
    return bearer(token)


def _no_exp(settings: Settings, user_id: str) -> dict[str, str]:
    claims = claims_for(user_id, exp=None)
    return bearer(jwt.encode(claims, secret_of(settings), algorithm="HS256"))


def _no_sub(settings: Settings, user_id: str) -> dict[str, str]:
    claims = claims_for(user_id)
    del claims["sub"]
    return bearer(jwt.encode(claims, secret_of(settings), algorithm="HS256"))


def _tampered(settings: Settings, user_id: str) -> dict[str, str]:
    """A valid token whose payload was swapped after signing."""
    token = jwt.encode(claims_for(user_id), secret_of(settings), algorithm="HS256")
    header, _, signature = token.split(".")
    forged = _b64(claims_for(user_id, exp=int(time.time()) + 10**6))
    return bearer(f"{header}.{forged}.{signature}")


REFUSED = [
    _no_header,
    _basic,
    _bare_bearer,
    _garbage,
    _raw_token,
    _expired,
    _other_secret,
    _alg_none,
    _hs512,
    _no_exp,
    _no_sub,
    _tampered,
]


def _valid(settings: Settings, user_id: str) -> dict[str, str]:
    return bearer(jwt.encode(claims_for(user_id), secret_of(settings), algorithm="HS256"))


async def test_a_token_made_like_the_refused_ones_but_valid_is_accepted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The control for the cases below: only the one flaw in each makes it fail."""
    user = await register_user(client)

    response = await client.get("/api/v1/users/me", headers=_valid(settings, user.user_id))

    assert response.status_code == 200


@pytest.mark.parametrize("make_headers", REFUSED, ids=[f.__name__.lstrip("_") for f in REFUSED])
async def test_bad_credentials_are_401_with_a_bearer_challenge(
    client: httpx.AsyncClient,
    settings: Settings,
    make_headers: Callable[[Settings, str], dict[str, str]],
) -> None:
    user = await register_user(client)

    response = await client.get("/api/v1/users/me", headers=make_headers(settings, user.user_id))

    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_token_for_a_user_that_does_not_exist_is_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/api/v1/users/me", headers=_valid(settings, UNKNOWN_USER_ID))

    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_refused_access_is_logged_as_a_security_event_without_the_token(
    client: httpx.AsyncClient, logs: LogCapture, settings: Settings
) -> None:
    headers = _other_secret(settings, UNKNOWN_USER_ID)

    await client.get("/api/v1/users/me", headers=headers)

    assert [r for r in logs.records if r.get("security") is True]
    token = headers["Authorization"].removeprefix("Bearer ")
    assert token not in logs.text


# --- the wrong kind of caller ---------------------------------------------------------------


async def test_a_merchant_key_on_a_user_route_is_403(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)

    response = await client.get("/api/v1/users/me", headers=merchant.headers)

    assert response.status_code == 403
    assert response.json()["error"] == "FORBIDDEN"


async def test_a_user_token_on_a_merchant_route_is_403(client: httpx.AsyncClient) -> None:
    user = await register_user(client)

    response = await client.get("/api/v1/merchants/me", headers=user.headers)

    assert response.status_code == 403
    assert response.json()["error"] == "FORBIDDEN"
