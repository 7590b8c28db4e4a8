"""The cached payment read, defined once for both places that answer it: the edge middleware
(`middleware/payment_read.py`, before routing) and the route's controller (the long way).

`GET /api/v1/payments/{paymentId}` is the hottest route: its answer is the cached JSON of the
payment in the success envelope, sent as stored, without a parse and a re-serialisation (it was
serialised from the same `public_view` the declared `PaymentEnvelope` describes).
"""

from __future__ import annotations

import re

from starlette.types import Scope

from payments_api.services.payment_cache import cache_key

PAYMENTS_PREFIX = "/api/v1/payments"
ROUTE_PATH = "/{paymentId}"
ROUTE_TEMPLATE = PAYMENTS_PREFIX + ROUTE_PATH
"""The route, as the router declares it and as metrics and logs name it."""

_PATH = re.compile("^" + re.escape(PAYMENTS_PREFIX) + "/([^/]+)$")


def payment_id_of(scope: Scope) -> str | None:
    """The paymentId of a `GET` of this route, else None."""
    if scope["method"] != "GET":
        return None
    match = _PATH.match(scope["path"])
    return match.group(1) if match else None


def read_prefetch_key(scope: Scope, reader_id: str) -> str | None:
    """For the rate limiter: a payment read needs the reader's cache entry first, so the
    limiter fetches it in the same Redis round trip as the reader's count (the two share the
    reader's hash slot)."""
    payment_id = payment_id_of(scope)
    return cache_key(reader_id, payment_id) if payment_id is not None else None


def envelope(payment_json: str) -> bytes:
    """The answer's body: the payment's JSON, as cached, in the success envelope."""
    return b'{"success":true,"payment":' + payment_json.encode() + b"}"
