"""The bodies of the operator's routes: /health (liveness) and /ready (dependencies)."""

from __future__ import annotations

from typing import Literal

from payments_api.config.constants import CheckResult
from payments_api.schemas.common import CamelModel


class Memory(CamelModel):
    rss: int
    max_rss: int


class Health(CamelModel):
    status: Literal["healthy"] = "healthy"
    timestamp: str
    uptime: float
    memory: Memory
    version: str


class Readiness(CamelModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckResult]
