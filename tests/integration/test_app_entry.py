"""How a request enters the app: HTTP straight to the edge (`PaymentsApp`), past the framework's
pass-through layers, and never past a layer the app gained afterwards."""

from __future__ import annotations

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from payments_api.app import PaymentsApp
from payments_api.middleware.edge import EdgeMiddleware


async def test_http_requests_enter_at_the_edge(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Fails when a FastAPI or Starlette upgrade puts a layer of its own before the edge: the
    app still answers, but every request pays for the framework's layers again."""
    response = await client.get("/health")
    assert response.status_code == 200
    assert isinstance(app, PaymentsApp)
    assert isinstance(app.edge, EdgeMiddleware)
    assert app.stack_of_edge is app.middleware_stack


class _Marking:
    """A layer added after the stack was first built: marks the answers it passed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def marked(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                message = {**message, "headers": [*headers, (b"x-marked", b"1")]}
            await send(message)

        await self.app(scope, receive, marked)


@pytest.mark.parametrize("how", ["rebuilt", "wrapped"])
async def test_a_layer_put_before_the_edge_sees_every_request(
    app: FastAPI, client: httpx.AsyncClient, how: str
) -> None:
    """The edge found in the first stack is not entered directly once the stack has changed:
    rebuilt with a layer before the edge, or replaced by a wrapper around it."""
    assert (await client.get("/health")).status_code == 200
    if how == "rebuilt":
        app.user_middleware.insert(0, Middleware(_Marking))
        app.middleware_stack = None  # built again on the next request
    else:
        assert app.middleware_stack is not None
        app.middleware_stack = _Marking(app.middleware_stack)

    response = await client.get("/health")

    assert response.status_code == 200
    assert response.headers.get("x-marked") == "1"
    assert "x-request-id" in response.headers  # the edge, inside the new layer, still ran


def test_uvicorn_takes_the_app_for_an_asgi_3_app(app: FastAPI) -> None:
    """uvicorn tells ASGI 3 from ASGI 2 by whether `__call__` is a coroutine function; taken
    for ASGI 2, the app fails at start-up (`make run` would not start)."""
    config = uvicorn.Config(app, log_config=None)
    config.load()
    assert config.interface == "asgi3"
