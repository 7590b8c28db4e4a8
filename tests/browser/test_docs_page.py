"""/docs in a real browser with the network cut off: everything it loads comes from the
service's own origin, it breaks no rule of its Content-Security-Policy, and Swagger UI renders
every operation of /openapi.json (so a blank page, the symptom of a CDN that cannot be reached,
fails here). Opened by 127.0.0.1, and over plain http by an internal host name, as an operator
on a closed network would (where `upgrade-insecure-requests` would send the page's own files
to https, on a port that speaks no TLS)."""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Route
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import INTERNAL_HOST
from tests.fixtures.serve_process import ServeProcess

RENDER_TIMEOUT_MS = 30_000
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
PLAIN_HTTP_NOTICE = "The Cross-Origin-Opener-Policy header has been ignored"
"""What Chromium logs (as an error) for the contract's COOP header on a page served over plain
http by a name that is not loopback: the header takes effect only over https."""
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push({
    directive: event.violatedDirective,
    blocked: event.blockedURI,
    source: event.sourceFile,
    sample: event.sample,
  });
});
"""


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def rendered_operations(document: dict[str, Any]) -> int:
    """How many `.opblock`s Swagger UI draws for `document`: one per operation under each of
    its tags (an untagged one under "default"), and one per webhook operation."""
    count = 0
    for section in ("paths", "webhooks"):
        for item in document.get(section, {}).values():
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    count += max(1, len(operation.get("tags", [])))
    return count


@dataclass
class PageRecord:
    """What a page did besides rendering: requests to other origins (aborted), console
    errors, uncaught exceptions and Content-Security-Policy violations."""

    own_origin: str
    foreign_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)

    async def route(self, route: Route) -> None:
        """Cut the network: only the service's own origin is reached."""
        url = route.request.url
        if origin(url) == self.own_origin:
            await route.continue_()
        else:
            self.foreign_requests.append(url)
            await route.abort("blockedbyclient")

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} at {message.location}")


async def open_recorded(browser: Browser, url: str) -> tuple[Page, PageRecord]:
    """A new page at `url` with everything it does recorded from before its first request."""
    record = PageRecord(origin(url))
    context = await browser.new_context()
    await context.add_init_script(RECORD_VIOLATIONS)
    await context.route("**/*", record.route)
    page = await context.new_page()
    page.on("console", record.console)
    page.on("pageerror", lambda error: record.page_errors.append(str(error)))
    await page.goto(url, wait_until="load")
    return page, record


async def shown_examples(page: Page, path: str) -> list[str]:
    """Open the POST operation at `path` and read the names its body example picker offers."""
    operation = page.locator(f".opblock-post:has(.opblock-summary-path[data-path='{path}'])")
    await operation.locator(".opblock-summary").click()
    picker = operation.locator(".opblock-section-request-body .examples-select select")
    await picker.wait_for(timeout=RENDER_TIMEOUT_MS)
    names: list[str] = await picker.locator("option").evaluate_all(
        "options => options.map(option => option.value)"
    )
    return names


@pytest.mark.parametrize("host", ["127.0.0.1", INTERNAL_HOST])
async def test_docs_render_every_operation_from_the_service_alone(
    browser: Browser, service: ServeProcess, host: str
) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as http:
        document = (await http.get(f"{service.url}/openapi.json")).json()
    expected = rendered_operations(document)
    page, record = await open_recorded(browser, f"http://{host}:{service.port}/docs")

    with suppress(PlaywrightTimeoutError):  # the assertions say what was drawn and what failed
        await page.wait_for_function(
            "n => document.querySelectorAll('.opblock').length >= n",
            arg=expected,
            timeout=RENDER_TIMEOUT_MS,
        )
    drawn = await page.locator(".opblock").count()
    examples = await shown_examples(page, "/api/v1/payments") if drawn == expected else []
    record.violations = await page.evaluate("window.__cspViolations")
    took = time.monotonic() - started

    assert record.foreign_requests == [], "the page reached for another origin"
    assert record.violations == [], "the page broke its Content-Security-Policy"
    assert record.page_errors == []
    errors = [text for text in record.console_errors if not text.startswith(PLAIN_HTTP_NOTICE)]
    assert errors == []
    assert drawn == expected, f"{drawn} of {expected} operations drawn in {took:.1f} s"
    body = document["paths"]["/api/v1/payments"]["post"]["requestBody"]["content"]
    assert examples == list(body["application/json"]["examples"])
