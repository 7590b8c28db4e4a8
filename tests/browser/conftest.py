"""The browser tier: Debian's headless Chromium, driven by Playwright, against a real
`payments-api serve` process on its embedded defaults.

Playwright never downloads a browser here (`playwright install` cannot reach its hosts): it
drives /usr/bin/chromium, which `make chromium` (a prerequisite of `make test`) installs. A
missing Chromium fails these tests with the way to install it; it never skips them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.fixtures.serve_process import ServeProcess, serve_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The machine has no network: these stop Chromium's own connections (safe browsing, field
    # trials, component and sync updates), which no page of ours asked for.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INTERNAL_HOST = "payments-api.internal"
"""A host name as an operator's internal network would give the service: Chromium resolves it
to 127.0.0.1 (`--host-resolver-rules`), so a page opened by it still reaches only this machine."""
INSTALL_HINT = (
    f"The browser tests need Chromium at {CHROMIUM}: run `make chromium` (as root it installs "
    "Debian's `chromium` package; otherwise `sudo apt-get install chromium`)."
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One `payments-api serve` for the module's pages."""
    with serve_process(tmp_path_factory.mktemp("browser-serve")) as server:
        yield server


@pytest.fixture
def chromium_path() -> str:
    """/usr/bin/chromium, or the test fails saying how to install it (never a skip)."""
    if not CHROMIUM.is_file():
        pytest.fail(INSTALL_HINT)
    return str(CHROMIUM)


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """Headless Chromium, closed (with its processes) when the test ends."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {INTERNAL_HOST} 127.0.0.1"],
        )
        try:
            yield chromium
        finally:
            await chromium.close()
