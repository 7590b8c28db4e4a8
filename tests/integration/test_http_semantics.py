"""HTTP semantics the contract fixes for every route: HEAD wherever GET is, a 405 naming every
method of the path, bounded request headers, header values compared without the whitespace
around them, and no redirect built from `Host`."""

from __future__ import annotations

import re
from collections.abc import Callable

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from payments_api.config.constants import MAX_HEADER_BYTES, MAX_HEADER_COUNT
from payments_api.config.settings import Settings
from tests.fixtures.apps import LogCapture, running
from tests.fixtures.factories import register_user
from tests.fixtures.payments import open_shop_and_pay

EVIL_HOST = "evil.example"
ALLOWED_ORIGIN = "https://shop.example.com"  # in the test settings' ALLOWED_ORIGINS


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/payments/"),
        ("POST", "/api/v1/payments/"),
        ("GET", "/api/v1/users/me/"),
        ("GET", "/health/"),
    ],
)
async def test_a_trailing_slash_is_a_404_and_never_a_redirect_to_the_host(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    user = await register_user(client)
    response = await client.request(
        method, path, headers={**user.headers, "Host": EVIL_HOST}, json={}
    )
    assert response.status_code == 404, response.text
    assert "location" not in response.headers
    assert EVIL_HOST not in response.text
    body = response.json()
    assert body["error"] == "ROUTE_NOT_FOUND"
    assert body["message"] == f"Cannot {method} {path}"


async def test_a_trailing_slash_without_credentials_is_the_same_404(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/payments/", headers={"Host": EVIL_HOST})
    assert response.status_code == 404, response.text
    assert "location" not in response.headers
    assert response.json()["message"] == "Cannot GET /api/v1/payments/"


# --- header values without the whitespace around them (RFC 9110 OWS) -----------------------

PADDINGS = [" ", "\t", "  \t"]


@pytest.mark.parametrize("pad", PADDINGS, ids=repr)
async def test_a_bearer_credential_with_whitespace_around_it_is_accepted(
    client: httpx.AsyncClient, pad: str
) -> None:
    user = await register_user(client)
    authorization = f"{pad}Bearer {user.token}{pad}"
    response = await client.get("/api/v1/users/me", headers={"Authorization": authorization})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["userId"] == user.user_id


@pytest.mark.parametrize("pad", PADDINGS, ids=repr)
async def test_a_request_id_with_whitespace_around_it_is_echoed_without_it(
    client: httpx.AsyncClient, pad: str
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": f"{pad}trace-42{pad}"})
    assert response.headers["x-request-id"] == "trace-42"


@pytest.mark.parametrize("pad", PADDINGS, ids=repr)
async def test_an_allowed_origin_with_whitespace_around_it_is_allowed(
    client: httpx.AsyncClient, pad: str
) -> None:
    response = await client.get("/health", headers={"Origin": f"{pad}{ALLOWED_ORIGIN}{pad}"})
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


# --- bounded request headers: 100 fields, 16 KiB in all -------------------------------------


def header_bytes(request: httpx.Request) -> int:
    """The request's header fields in all, each as its `name: value` line with its CRLF."""
    return sum(len(name) + len(value) + 4 for name, value in request.headers.raw)


def request_with_headers(
    client: httpx.AsyncClient, fields: int, size: int | None = None, path: str = "/health"
) -> httpx.Request:
    """A GET of `path` with exactly `fields` header fields (httpx's own included), the last
    one padded so that they come to `size` bytes in all when given."""
    own = len(client.build_request("GET", path).headers.raw)
    extra = [(f"x-pad-{index}", "v") for index in range(fields - own)]
    request = client.build_request("GET", path, headers=extra)
    if size is not None:
        name, value = extra[-1]
        extra[-1] = (name, value + "v" * (size - header_bytes(request)))
        request = client.build_request("GET", path, headers=extra)
        assert header_bytes(request) == size
    assert len(request.headers.raw) == fields
    return request


def assert_headers_too_large(response: httpx.Response) -> None:
    assert response.status_code == 431, response.text
    body = response.json()
    assert body["error"] == "HEADERS_TOO_LARGE"
    assert set(body) == {"error", "message", "requestId"}
    assert body["requestId"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_as_many_header_fields_as_allowed_are_served(client: httpx.AsyncClient) -> None:
    response = await client.send(request_with_headers(client, MAX_HEADER_COUNT))
    assert response.status_code == 200, response.text


async def test_one_header_field_too_many_is_a_431(client: httpx.AsyncClient) -> None:
    response = await client.send(request_with_headers(client, MAX_HEADER_COUNT + 1))
    assert_headers_too_large(response)


async def test_headers_of_exactly_the_size_allowed_are_served(client: httpx.AsyncClient) -> None:
    response = await client.send(request_with_headers(client, 10, MAX_HEADER_BYTES))
    assert response.status_code == 200, response.text


async def test_headers_one_byte_over_the_size_allowed_are_a_431(
    client: httpx.AsyncClient,
) -> None:
    response = await client.send(request_with_headers(client, 10, MAX_HEADER_BYTES + 1))
    assert_headers_too_large(response)


async def test_one_header_over_the_size_allowed_is_a_431_before_authentication(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Authorization": "Bearer " + "x" * MAX_HEADER_BYTES}
    response = await client.get("/api/v1/payments", headers=headers)
    assert_headers_too_large(response)
    assert "ratelimit-limit" not in response.headers


async def test_a_431_is_logged_as_a_security_event_and_an_access_line(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.send(request_with_headers(client, MAX_HEADER_COUNT + 1))
    request_id = response.headers["x-request-id"]
    mine = [record for record in logs.records if record.get("requestId") == request_id]
    assert any(
        record.get("security") is True and record.get("headerCount") == MAX_HEADER_COUNT + 1
        for record in mine
    ), mine
    assert any(
        record["message"] == "request completed" and record["statusCode"] == 431 for record in mine
    ), mine


# --- HEAD on every GET route; a 405 names every method of the path -------------------------

VARYING = frozenset({"x-request-id", "ratelimit-remaining", "ratelimit-reset", "content-length"})
"""Headers that may differ between two requests in a row (a count, a clock, a new id; the
length of /health and /metrics, whose numbers change)."""


def get_routes(app: FastAPI) -> list[str]:
    """The path template of every route that answers GET."""
    contexts = fastapi.routing.iter_route_contexts(app.routes)
    return sorted({str(c.path) for c in contexts if c.methods and "GET" in c.methods})


def assert_head_is_get_without_body(get: httpx.Response, head: httpx.Response) -> None:
    assert head.status_code == get.status_code, (head.request.url, get.text)
    assert head.content == b""
    assert set(head.headers) == set(get.headers)
    for name, value in get.headers.items():
        if name not in VARYING:
            assert head.headers[name] == value, name


async def test_head_answers_every_get_route_as_get_without_the_body(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)
    values = {
        "paymentId": payment["paymentId"],
        "merchantId": shop.merchant.merchant_id,
        "userId": shop.user.user_id,
        "name": "swagger-init.js",  # /docs/assets/{name}
    }
    templates = get_routes(app)
    assert "/api/v1/payments/{paymentId}" in templates
    for template in templates:
        path = re.sub(r"{(\w+)}", lambda match: values[match.group(1)], template)
        for headers in (shop.user.headers, shop.merchant.headers, shop.admin):
            get = await client.get(path, headers=headers)
            head = await client.head(path, headers=headers)
            assert get.status_code != 405, path
            assert_head_is_get_without_body(get, head)


async def test_the_app_itself_sends_no_body_for_head(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """httpx (like uvicorn) drops a HEAD answer's body on its own, so this asks the app
    directly: its answer to HEAD carries the GET's Content-Length and no body bytes."""
    shop, payment = await open_shop_and_pay(client)
    path = f"/api/v1/payments/{payment['paymentId']}"
    get = await client.get(path, headers=shop.user.headers)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    for _ in range(2):  # by the route, then by the cached-read fast path
        sent.clear()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "HEAD",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"authorization", f"Bearer {shop.user.token}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 3000),
        }
        await app(scope, receive, send)
        start, *bodies = sent
        assert start["status"] == 200
        assert (b"content-length", get.headers["content-length"].encode()) in start["headers"]
        assert b"".join(body.get("body", b"") for body in bodies) == b""


async def test_head_of_a_cached_payment_is_answered_at_the_edge_like_its_get(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate limiter fetches the cache entry for a HEAD as for a GET, and the fast path
    answers it: the route (which would read the payment itself) is not reached."""
    shop, payment = await open_shop_and_pay(client)
    path = f"/api/v1/payments/{payment['paymentId']}"
    first = await client.get(path, headers=shop.user.headers)  # fills the cache
    assert first.status_code == 200, first.text
    routed: list[str] = []
    payments = app.state.services.payment_reads
    read_json = payments.read_json

    async def counting(*args: object, **kwargs: object) -> str:
        routed.append("read")
        result: str = await read_json(*args, **kwargs)
        return result

    monkeypatch.setattr(payments, "read_json", counting)
    get = await client.get(path, headers=shop.user.headers)
    head = await client.head(path, headers=shop.user.headers)

    assert routed == []
    assert_head_is_get_without_body(get, head)
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
    assert int(head.headers["ratelimit-remaining"]) == int(get.headers["ratelimit-remaining"]) - 1


async def test_head_is_counted_by_the_rate_limiter_and_refused_like_get(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(rate_limit="2/minute")) as (_, http):
        answers = [await http.head("/api/v1/payments") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [401, 401, 429]
    assert [answer.headers["ratelimit-remaining"] for answer in answers] == ["1", "0", "0"]
    assert all(answer.content == b"" for answer in answers)


async def test_head_is_logged_and_counted_as_head_under_its_route_template(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    user = await register_user(client)
    response = await client.head("/api/v1/users/me", headers=user.headers)
    assert response.status_code == 200
    [line] = [
        record
        for record in logs.records
        if record.get("requestId") == response.headers["x-request-id"]
        and record["message"] == "request completed"
    ]
    assert line["method"] == "HEAD"
    metrics = (await client.get("/metrics")).text
    assert 'http_requests_total{method="HEAD",route="/api/v1/users/me",status="200"} 1.0' in metrics


async def test_head_on_a_route_without_get_is_a_405_without_a_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.head("/api/v1/auth/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.content == b""


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/v1/payments", "GET, HEAD, POST"),
        ("PUT", "/api/v1/payments", "GET, HEAD, POST"),
        ("POST", "/health", "GET, HEAD"),
        ("DELETE", "/api/v1/payments/pay_x", "GET, HEAD"),
        ("GET", "/api/v1/payments/pay_x/refund", "POST"),
        # /me also matches /{userId}, but that is another route (the description's too)
        ("DELETE", "/api/v1/users/me", "GET, HEAD"),
        ("GET", "/api/v1/users/usr_x", "PATCH"),
    ],
)
async def test_a_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.json()["error"] == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == allow


async def test_every_route_s_methods_are_in_the_allow_of_its_405(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    for context in fastapi.routing.iter_route_contexts(app.routes):
        methods = set(context.methods or ())
        if "GET" in methods:
            methods.add("HEAD")
        unused = next(m for m in ("DELETE", "PUT", "PATCH", "POST") if m not in methods)
        path = re.sub(r"{\w+}", "x", str(context.path))
        response = await client.request(unused, path)
        assert response.status_code == 405, (unused, path)
        assert methods <= set(response.headers["allow"].split(", ")), path
