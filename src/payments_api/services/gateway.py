"""The payment gateway client: one httpx.AsyncClient, a deadline on every call, and the mapping
of the gateway's answers onto what the payment flow needs to know.

The paymentId is the gateway's idempotency key, so asking again is always safe.

Outcomes of a charge or an authorization (and of a look-up or a reversal, which answer with
the charge):
- `approved` / `declined`: the gateway answered;
- `authorized`: an authorization (`charge(capture=False)`) holds the amount, nothing is taken
  until `capture`;
- `reversed`: the paymentId was reversed, so nothing is charged and nothing ever will be;
- `not_found`: a look-up found no charge *yet* — the request may still be on its way, so this
  is not a "no" (only a confirmed reversal is);
- `unknown`: it may have charged (timeout after sending, 5xx, broken answer): stay pending and
  let reconciliation ask later;
- `unreachable`: no connection was ever made, so nothing can have been charged.

A capture is `approved` (taken, under its captureId), `declined` (refused: nothing taken by
this capture), `unknown` or `unreachable`, as above.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from payments_api.config.settings import Settings
from payments_api.utils.logger import get_logger
from payments_api.utils.tracing import trace_http_client

logger = get_logger("gateway")

Outcome = Literal[
    "approved", "authorized", "declined", "reversed", "not_found", "unknown", "unreachable"
]
SANDBOX_BASE_URL = "http://sandbox-gateway"
MAX_CONNECTIONS = 100
MAX_KEEPALIVE = 20
DROPPED = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
"""A connection that broke before the answer came: the request may or may not have arrived."""


@dataclass(frozen=True, slots=True)
class GatewayResult:
    outcome: Outcome
    transaction_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    data: dict[str, Any] | None = None


class GatewayClient:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.timeout = settings.gateway_timeout_seconds
        self.client = trace_http_client(
            httpx.AsyncClient(
                base_url=settings.gateway_url or SANDBOX_BASE_URL,
                transport=transport,
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 3.0)),
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE
                ),
            )
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _send(
        self, method: str, path: str, json: dict[str, Any] | None = None
    ) -> httpx.Response | Outcome:
        """One call under an overall deadline (httpx's timeouts do not bind an in-process
        transport, so the deadline is enforced here too). Only a connection never made is
        `unreachable`; anything else that is not an answer is `unknown`."""
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    return await self.client.request(method, path, json=json)
                except DROPPED as exc:
                    return await self._ask_again(method, path, json, exc)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            logger.warning("gateway unreachable", method=method, path=path)
            return "unreachable"
        except (TimeoutError, httpx.TimeoutException):
            logger.warning("gateway timed out", method=method, path=path)
            return "unknown"
        except httpx.HTTPError as exc:
            logger.warning(
                "gateway call failed", method=method, path=path, error=type(exc).__name__
            )
            return "unknown"
        except Exception:
            # A transport that fails in a way httpx does not map (a socket torn down under
            # it): still no answer, so still not a "no".
            logger.exception("gateway call broke", method=method, path=path)
            return "unknown"

    async def _ask_again(
        self, method: str, path: str, json: dict[str, Any] | None, dropped: Exception
    ) -> httpx.Response | Outcome:
        """The connection dropped before an answer (most often a kept-alive one the gateway
        had closed). Every call is idempotent by its ids, so it is asked once more, on a new
        connection; but the first attempt may have been acted on, so unless this one
        answers, the outcome is `unknown` — never `unreachable`."""
        logger.info(
            "gateway connection dropped; asking again",
            method=method,
            path=path,
            error=type(dropped).__name__,
        )
        try:
            return await self.client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            logger.warning(
                "gateway call failed", method=method, path=path, error=type(exc).__name__
            )
            return "unknown"

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _charge_result(self, response: httpx.Response | Outcome) -> GatewayResult:
        """A charge as the gateway describes it. A refusal (409) that carries the charge it
        is about — a reversal refused because the charge exists — is read as that charge."""
        if isinstance(response, str):
            return GatewayResult(response)
        body = self._json(response)
        status = body.get("status")
        if response.status_code in (200, 409) and status == "approved":
            return GatewayResult("approved", transaction_id=body.get("transactionId"), data=body)
        if response.status_code in (200, 409) and status == "authorized":
            return GatewayResult("authorized", transaction_id=body.get("transactionId"), data=body)
        if response.status_code in (200, 409) and status == "reversed":
            return GatewayResult("reversed", data=body)
        if response.status_code == 402 or status == "declined":
            return GatewayResult(
                "declined",
                failure_code=str(body.get("failureCode") or "CARD_DECLINED"),
                failure_message=str(body.get("failureMessage") or "The payment was declined"),
                data=body,
            )
        if response.status_code == 404:
            return GatewayResult("not_found", data=body)
        return GatewayResult("unknown", data=body)

    async def charge(
        self,
        *,
        payment_id: str,
        amount: int,
        currency: str,
        payment_method: str,
        capture: bool = True,
    ) -> GatewayResult:
        """Charge `amount` at once or, with `capture=False`, only authorize it (`authorized`)
        for a `capture` later. A repeat must ask the same way: the gateway's idempotency
        covers the amount and the capture mode."""
        response = await self._send(
            "POST",
            "/v1/charges",
            {
                "paymentId": payment_id,
                "amount": amount,
                "currency": currency,
                "paymentMethod": payment_method,
                "capture": capture,
            },
        )
        return self._charge_result(response)

    async def capture(self, *, payment_id: str, capture_id: str, amount: int) -> GatewayResult:
        """Take `amount` (at most what was authorized) of the authorization of `payment_id`,
        idempotent on `capture_id`. Only a 200 with the charge `approved` is this capture
        taken; a refusal is `declined` with the gateway's code — a 409 `ALREADY_CAPTURED`
        carries an approved charge, but one another capture took."""
        response = await self._send(
            "POST",
            f"/v1/charges/{payment_id}/capture",
            {"captureId": capture_id, "amount": amount},
        )
        if isinstance(response, httpx.Response) and 200 <= response.status_code < 300:
            body = self._json(response)
            if body.get("status") == "approved":
                return GatewayResult(
                    "approved", transaction_id=body.get("transactionId"), data=body
                )
            return GatewayResult("unknown", data=body)
        return self._simple_result(response)

    async def lookup(self, payment_id: str) -> GatewayResult:
        """What the gateway knows of a charge: approved, authorized, declined, reversed, or
        (404) nothing yet."""
        return self._charge_result(await self._send("GET", f"/v1/charges/{payment_id}"))

    async def reverse(self, payment_id: str) -> GatewayResult:
        """Make sure the charge of `payment_id` never happens: `reversed` when it had not
        (and now never will), else the charge that does exist. Anything else — a gateway that
        cannot reverse (404), a timeout — is `unknown`, never a "not charged"."""
        result = self._charge_result(await self._send("POST", f"/v1/charges/{payment_id}/reverse"))
        if result.outcome == "not_found":
            logger.warning("gateway could not reverse a charge", paymentId=payment_id)
            return GatewayResult("unknown", data=result.data)
        return result

    async def cancel(self, payment_id: str) -> GatewayResult:
        """Cancel a charge in full or, for an authorization not captured, void it (the hold
        is let go, nothing was taken): `approved` when done, `declined` when refused."""
        response = await self._send("POST", f"/v1/charges/{payment_id}/cancel")
        return self._simple_result(response)

    async def refund(self, *, payment_id: str, refund_id: str, amount: int) -> GatewayResult:
        response = await self._send(
            "POST",
            f"/v1/charges/{payment_id}/refunds",
            {"refundId": refund_id, "amount": amount},
        )
        return self._simple_result(response)

    def _simple_result(self, response: httpx.Response | Outcome) -> GatewayResult:
        """Cancel and refund (and a capture that did not succeed): 2xx approved, 4xx refused,
        anything else unknown."""
        if isinstance(response, str):
            return GatewayResult(response)
        body = self._json(response)
        if 200 <= response.status_code < 300:
            return GatewayResult("approved", data=body)
        if 400 <= response.status_code < 500:
            return GatewayResult(
                "declined",
                failure_code=str(body.get("error") or "GATEWAY_REFUSED"),
                failure_message=str(body.get("message") or "The gateway refused"),
                data=body,
            )
        return GatewayResult("unknown", data=body)
