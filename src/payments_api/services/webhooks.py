"""Webhook delivery mechanics: the signature, the URL safety rule and one HTTP attempt.

`X-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed by the
merchant's webhook secret; while a rotated secret is in its grace period, a second `v1` keyed by
the old one follows (a receiver accepts a delivery when any `v1` matches). In production a
webhook must be `https` and its host must not resolve to a loopback, private, link-local
(cloud metadata), reserved or multicast address: the URL is chosen by a customer, and the
request comes from inside our network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from payments_api.utils.crypto import hmac_sha256_hex
from payments_api.utils.tracing import trace_http_client

WEBHOOK_TIMEOUT_SECONDS = 10.0
SIGNATURE_HEADER = "X-Webhook-Signature"


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`t=<timestamp>`, then one `v1=` per secret, in the order given (the current one first)."""
    signed = f"{timestamp}.".encode() + body
    return ",".join([f"t={timestamp}", *(f"v1={hmac_sha256_hex(s, signed)}" for s in secrets)])


def _blocked_ip(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Only globally routable unicast: this also refuses shared address space (100.64.0.0/10,
    # where some clouds keep their metadata service), which is_private does not cover.
    return not ip.is_global or ip.is_multicast


async def unsafe_reason(url: str, *, production: bool, must_resolve: bool = True) -> str | None:
    """Why this webhook URL may not be called, or None when it may. Outside production any
    http(s) URL is allowed (local receivers during development and tests). `must_resolve`
    is off when a merchant is created: a host that does not resolve yet is accepted then, and
    refused at delivery time until it resolves to a public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    if not production:
        return None
    if parts.scheme != "https":
        return "must be an https URL"
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
        )
    except OSError:
        return "its host does not resolve" if must_resolve else None
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or any(_blocked_ip(address) for address in addresses):
        return "its host resolves to a private, loopback or link-local address"
    return None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


async def post_webhook(
    client: httpx.AsyncClient, url: str, body: bytes, signature: str
) -> AttemptResult:
    """One attempt: a 2xx within 10 s is success; anything else is recorded and retried."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(WEBHOOK_TIMEOUT_SECONDS):
            response = await client.post(
                url,
                content=body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
            )
    except (TimeoutError, httpx.HTTPError) as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return AttemptResult(False, None, type(exc).__name__, round(elapsed, 1))
    elapsed = (time.perf_counter() - started) * 1000
    ok = 200 <= response.status_code < 300
    return AttemptResult(ok, response.status_code, None, round(elapsed, 1))


def create_webhook_client() -> httpx.AsyncClient:
    return trace_http_client(
        httpx.AsyncClient(
            timeout=httpx.Timeout(WEBHOOK_TIMEOUT_SECONDS),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
            headers={"User-Agent": "payments-api-webhooks/1"},
        )
    )
