"""`GET /health`, defined once for both places that answer it: the route (routes/health.py,
which declares it and answers a HEAD) and the middleware that answers a GET before routing
(middleware/liveness.py).

Liveness is polled by every load balancer and orchestrator, per instance, every few seconds,
and touches no dependency: its answer is built directly as JSON bytes, without a response
model's validation, the figures of process memory read at most once a second.
"""

from __future__ import annotations

import time

import orjson

from payments_api import __version__
from payments_api.utils.clock import iso_now
from payments_api.utils.memory import MemorySample

ROUTE_PATH = "/health"

_MEMORY = MemorySample()


def liveness_body(started_at: float) -> bytes:
    """The body of the Health model (routes/health.py), for an app started at `started_at`
    (`time.monotonic()`)."""
    rss, max_rss = _MEMORY.current()
    return orjson.dumps(
        {
            "status": "healthy",
            "timestamp": iso_now(),
            "uptime": round(time.monotonic() - started_at, 3),
            "memory": {"rss": rss, "maxRss": max_rss},
            "version": __version__,
        }
    )
