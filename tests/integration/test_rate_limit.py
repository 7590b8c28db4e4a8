"""Rate limits on /api/*: RATE_LIMIT per caller (the user or merchant when authenticated, else
the client IP, from X-Forwarded-For only behind a trusted proxy), counted in Redis so every
server process shares one budget. Every app here runs with RATE_LIMIT=5/minute."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack

import httpx
import pytest

from payments_api.app import create_app
from payments_api.config.settings import Settings
from tests.fixtures.apps import CLIENT_PEER, LogCapture, capture_logs, running, serve
from tests.fixtures.factories import admin_headers, create_merchant, register_user
from tests.fixtures.servers import scripts_refused

LIMIT = 5
PEER = CLIENT_PEER[0]  # the peer address every test client here reports
ANONYMOUS_ROUTE = "/api/v1/users/me"  # answers 401 without credentials, 200 with a user token


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(rate_limit=f"{LIMIT}/minute")


def remaining(response: httpx.Response) -> int:
    return int(response.headers["RateLimit-Remaining"])


async def spend(
    client: httpx.AsyncClient, times: int, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    """`times` requests that are under the limit (each one checked)."""
    responses = []
    for _ in range(times):
        response = await client.get(ANONYMOUS_ROUTE, headers=headers or {})
        assert response.status_code != 429, response.text
        responses.append(response)
    return responses


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"] == "TOO_MANY_REQUESTS"
    assert body["message"]
    assert body["requestId"] == response.headers["X-Request-ID"]
    retry_after = body["retryAfter"]
    assert type(retry_after) is int
    assert 1 <= retry_after <= 60
    assert response.headers["Retry-After"] == str(retry_after)
    assert response.headers["RateLimit-Limit"] == str(LIMIT)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(response.headers["RateLimit-Reset"]) <= 60


async def test_responses_under_the_limit_carry_the_headers_counting_down(
    client: httpx.AsyncClient,
) -> None:
    responses = await spend(client, LIMIT)

    assert [r.status_code for r in responses] == [401] * LIMIT
    assert [remaining(r) for r in responses] == [4, 3, 2, 1, 0]
    for response in responses:
        assert response.headers["RateLimit-Limit"] == str(LIMIT)
        assert 1 <= int(response.headers["RateLimit-Reset"]) <= 60
        assert "Retry-After" not in response.headers


async def test_a_successful_response_carries_the_headers_too(client: httpx.AsyncClient) -> None:
    user = await register_user(client)  # two requests from this IP

    response = await client.get(ANONYMOUS_ROUTE, headers=user.headers)

    assert response.status_code == 200
    assert response.headers["RateLimit-Limit"] == str(LIMIT)
    assert remaining(response) == LIMIT - 1  # the user's own budget


async def test_the_request_over_the_limit_is_a_429(client: httpx.AsyncClient) -> None:
    await spend(client, LIMIT)

    over = await client.get(ANONYMOUS_ROUTE)
    other_route = await client.post(
        "/api/v1/auth/token", json={"email": "a@example.com", "password": "whatever-123"}
    )
    unknown_route = await client.get("/api/v1/nothing-here")

    for response in (over, other_route, unknown_route):
        assert_limited(response)


async def test_health_is_never_limited(client: httpx.AsyncClient) -> None:
    for _ in range(LIMIT * 2):
        response = await client.get("/health")
        assert response.status_code == 200
        assert "RateLimit-Limit" not in response.headers
    assert remaining((await spend(client, 1))[0]) == LIMIT - 1  # /health spent nothing

    await spend(client, LIMIT - 1)
    assert_limited(await client.get(ANONYMOUS_ROUTE))

    for _ in range(3):
        assert (await client.get("/health")).status_code == 200


async def test_a_user_has_a_budget_of_their_own(client: httpx.AsyncClient) -> None:
    user = await register_user(client)  # POST /users and POST /auth/token: 2 from this IP
    await spend(client, LIMIT - 2)
    assert_limited(await client.get(ANONYMOUS_ROUTE))

    mine = await spend(client, LIMIT, user.headers)

    assert [r.status_code for r in mine] == [200] * LIMIT
    assert [remaining(r) for r in mine] == [4, 3, 2, 1, 0]
    assert_limited(await client.get(ANONYMOUS_ROUTE, headers=user.headers))
    assert_limited(await client.get(ANONYMOUS_ROUTE))


async def test_two_users_have_separate_budgets(client: httpx.AsyncClient) -> None:
    first = await register_user(client)
    second = await register_user(client)  # 4 requests from this IP so far

    await spend(client, LIMIT, first.headers)
    assert_limited(await client.get(ANONYMOUS_ROUTE, headers=first.headers))

    theirs = await spend(client, LIMIT, second.headers)
    assert [r.status_code for r in theirs] == [200] * LIMIT
    assert remaining(theirs[0]) == LIMIT - 1
    assert_limited(await client.get(ANONYMOUS_ROUTE, headers=second.headers))


async def test_a_merchant_has_a_budget_of_its_own(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)  # 1 from this IP; the create counts to the admin
    merchant = await create_merchant(client, admin)
    await spend(client, LIMIT - 1)
    assert_limited(await client.get(ANONYMOUS_ROUTE))

    responses = [
        await client.get("/api/v1/merchants/me", headers=merchant.headers) for _ in range(LIMIT)
    ]

    assert [r.status_code for r in responses] == [200] * LIMIT
    assert [remaining(r) for r in responses] == [4, 3, 2, 1, 0]
    assert_limited(await client.get("/api/v1/merchants/me", headers=merchant.headers))


@pytest.mark.parametrize(
    "credential",
    [
        "Bearer not-a-jwt",
        "Bearer sk_unknown_merchant_key",
        "Basic dXNlcjpwYXNz",
    ],
)
async def test_an_invalid_credential_spends_the_ip_budget(
    client: httpx.AsyncClient, credential: str
) -> None:
    await spend(client, LIMIT)

    response = await client.get(ANONYMOUS_ROUTE, headers={"Authorization": credential})

    assert_limited(response)


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    spoofed = [
        await client.get(ANONYMOUS_ROUTE, headers={"X-Forwarded-For": f"198.51.100.{n}"})
        for n in range(1, LIMIT + 1)
    ]

    assert [remaining(r) for r in spoofed] == [4, 3, 2, 1, 0]
    assert_limited(await client.get(ANONYMOUS_ROUTE, headers={"X-Forwarded-For": "198.51.100.99"}))
    assert_limited(await client.get(ANONYMOUS_ROUTE))


@pytest.mark.parametrize("trusted", [PEER, "203.0.113.0/24"])
async def test_x_forwarded_for_is_honoured_behind_a_trusted_proxy(
    make_settings: Callable[..., Settings], trusted: str
) -> None:
    settings = make_settings(rate_limit=f"{LIMIT}/minute", trusted_proxies=[trusted])
    alice = {"X-Forwarded-For": "198.51.100.1"}
    bob = {"X-Forwarded-For": "198.51.100.2"}
    async with running(settings, CLIENT_PEER) as (_, client):
        await spend(client, LIMIT, alice)
        assert_limited(await client.get(ANONYMOUS_ROUTE, headers=alice))
        # a client cannot escape by prepending a forged hop: the proxy appended the real one
        forged = {"X-Forwarded-For": "192.0.2.200, 198.51.100.1"}
        assert_limited(await client.get(ANONYMOUS_ROUTE, headers=forged))

        for_bob = await client.get(ANONYMOUS_ROUTE, headers=bob)
        from_the_proxy = await client.get(ANONYMOUS_ROUTE)

    assert for_bob.status_code == 401
    assert remaining(for_bob) == LIMIT - 1
    assert from_the_proxy.status_code == 401
    assert remaining(from_the_proxy) == LIMIT - 1


async def test_a_rate_limit_hit_is_logged_as_a_security_event(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    await spend(client, LIMIT)
    assert [r for r in logs.records if r.get("security") and "rate" in r["message"].lower()] == []

    response = await client.get(ANONYMOUS_ROUTE, headers={"Authorization": "Bearer not-a-jwt"})

    assert_limited(response)
    hits = [
        record
        for record in logs.records
        if record.get("security") is True and "rate limit" in record["message"].lower()
    ]
    assert len(hits) == 1, logs.text
    assert hits[0]["requestId"] == response.headers["X-Request-ID"]
    assert hits[0]["level"] == "warning"
    assert "not-a-jwt" not in logs.text


async def test_two_app_instances_on_one_redis_share_the_budget(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        _, first = await stack.enter_async_context(running(settings, CLIENT_PEER))
        _, second = await stack.enter_async_context(running(settings, CLIENT_PEER))

        on_first = await spend(first, 3)
        on_second = await spend(second, 2)
        over_first = await first.get(ANONYMOUS_ROUTE)
        over_second = await second.get(ANONYMOUS_ROUTE)

    assert [remaining(r) for r in on_first + on_second] == [4, 3, 2, 1, 0]
    assert_limited(over_first)
    assert_limited(over_second)


async def test_the_limit_comes_from_the_setting(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(rate_limit="2/minute"), CLIENT_PEER) as (_, client):
        responses = [await client.get(ANONYMOUS_ROUTE) for _ in range(3)]

    assert [r.status_code for r in responses] == [401, 401, 429]
    assert responses[0].headers["RateLimit-Limit"] == "2"
    assert responses[2].json()["error"] == "TOO_MANY_REQUESTS"


async def test_a_limiter_that_cannot_count_lets_requests_through_and_says_so_once(
    make_settings: Callable[..., Settings], redis_nodes: tuple[str, ...]
) -> None:
    """Redis refuses the counting script (an ACL here; a cluster refuses a script whose keys
    span slots): the API stays up, uncounted, and one error line says so for the minute, not
    a line per request and not silence."""
    with scripts_refused(*redis_nodes) as url:
        settings = make_settings(rate_limit=f"{LIMIT}/minute", redis_url=url)
        app = create_app(settings)
        with capture_logs(settings) as logs:  # after create_app, which sets logging up
            async with serve(app, CLIENT_PEER) as client:
                answers = [await client.get(ANONYMOUS_ROUTE) for _ in range(LIMIT + 3)]

    assert [answer.status_code for answer in answers] == [401] * (LIMIT + 3)
    assert all("ratelimit-limit" not in answer.headers for answer in answers)
    reports = [r for r in logs.records if r["message"].startswith("rate limiter cannot count")]
    assert len(reports) == 1, logs.text
    assert reports[0]["level"] == "error"
    assert reports[0]["error"] == "NoPermissionError"
