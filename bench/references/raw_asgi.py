"""Reference for the cached payment read: a raw ASGI callable, no framework, on the service's
stack, doing the work the read cannot do without.

The benchmark compares the service's `GET /api/v1/payments/:id` with this on the same request
(the service's seeded token and paymentId), so the ratio is what the service's framework and
checks cost on top of the floor. Per request it does:

- read the `authorization` header (401 unless it is a Bearer credential; the token is NOT
  verified: no JWT check, no ownership check, no rate-limit count — those are the service's);
- ONE Redis round trip (redis.asyncio with hiredis, one client for the process): GET of
  the service's own cache entry of the payment for its user (`cache_key(user, id)`, holding
  `<version>|<payment JSON>`; the user is BENCH_READER_ID, the token's, not read from it);
- ONE JSON log line on standard output, flushed, with the fields of the service's access line;
- 200 with the cached JSON in `{"success":true,"payment":…}` as stored (no parse, no
  re-serialisation, as the service sends it) and the service's response headers: x-request-id,
  the security headers, ratelimit-*. A missing entry is a 404.

Same server as the service: uvicorn, uvloop, httptools, one process, no access log, no `server`
header.

    REDIS_URL=redis://127.0.0.1:PORT/0 BENCH_READER_ID=usr_… python bench/references/raw_asgi.py --port PORT
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from serving import serve

from payments_api.middleware.security_headers import API_HEADERS  # the service's own
from payments_api.services.payment_cache import cache_key  # the service's own

PREFIX = "/api/v1/payments/"
RATE_LIMIT = b"100000000"
WINDOW_S = 15 * 60
READER_ID = os.environ.get("BENCH_READER_ID", "")

_redis: Redis | None = None


def redis() -> Redis:
    """The process's one client, created on first use (inside the server's event loop)."""
    global _redis
    if _redis is None:
        # No socket timeout: redis-py's default one wraps every command in a task
        # (asyncio.wait_for), which the service avoids too; a floor must not pay for it.
        _redis = Redis.from_url(os.environ["REDIS_URL"], socket_timeout=None)
    return _redis


def log_line(
    scope: dict[str, Any], status: int, started: float, request_id: str, user_agent: str
) -> None:
    client = scope.get("client")
    line = {
        "@timestamp": datetime.now(UTC).isoformat(),
        "level": "info" if status < 400 else "warning",
        "message": "request completed",
        "service": "raw-asgi",
        "method": scope["method"],
        "path": scope["path"],
        "statusCode": status,
        "durationMs": round((time.perf_counter() - started) * 1000, 2),
        "userAgent": user_agent,
        "ip": client[0] if client else "",
        "requestId": request_id,
    }
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def send_json(send: Any, status: int, body: bytes, request_id: str) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        *API_HEADERS,
        (b"ratelimit-limit", RATE_LIMIT),
        (b"ratelimit-remaining", RATE_LIMIT),
        (b"ratelimit-reset", str(WINDOW_S - int(time.time()) % WINDOW_S).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                redis()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _redis is not None:
                    await _redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    started = time.perf_counter()
    request_id = os.urandom(8).hex()
    authorization = b""
    user_agent = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
    path: str = scope["path"]
    if scope["method"] != "GET" or not path.startswith(PREFIX):
        status, body = 404, b'{"error":"NOT_FOUND","message":"Route not found"}'
    elif not authorization.startswith(b"Bearer "):
        status, body = 401, b'{"error":"UNAUTHORIZED","message":"Missing token"}'
    else:
        raw = await redis().get(cache_key(READER_ID, path[len(PREFIX) :]))
        _, sep, payment = (raw or b"").partition(b"|")
        if sep:
            status, body = 200, b'{"success":true,"payment":' + payment + b"}"
        else:
            status, body = 404, b'{"error":"PAYMENT_NOT_FOUND","message":"Payment not found"}'
    await send_json(send, status, body, request_id)
    log_line(scope, status, started, request_id, user_agent)


if __name__ == "__main__":
    serve(app, __doc__.splitlines()[0])
