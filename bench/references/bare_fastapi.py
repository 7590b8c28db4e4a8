"""Reference for `GET /health`: FastAPI with one route and no middleware, on the service's stack.

The benchmark compares the service's /health (every middleware of the stack, the access log
line included) with this, the same framework doing nothing else, so the ratio is the cost of
the stack. Same server as the service: uvicorn, uvloop, httptools, one process, no access log,
no `server` header. The body has the shape of the service's /health, with cheap values.

    python bench/references/bare_fastapi.py --port PORT
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from serving import serve

STARTED = time.monotonic()

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/health")
async def health() -> dict[str, object]:
    return {
        "status": "healthy",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "uptime": round(time.monotonic() - STARTED, 3),
        "memory": {"rss": 50_000_000, "maxRss": 50_000_000},
        "version": "0.1.0",
    }


if __name__ == "__main__":
    serve(app, __doc__.splitlines()[0])
