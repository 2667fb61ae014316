"""Browser tests: Debian's chromium (`apt-get install chromium`) driven by Playwright for Python, never a browser
that Playwright downloads. Without /usr/bin/chromium these tests are skipped with one line saying so.

Fixtures: `browser` (a headless chromium), `page` (a fresh context and page), `dashboard` (the service with an
admin token on a free port); helpers `log_in(page, url)` and `screenshot(page, name)`.

Screenshots are always taken (a page that cannot be drawn fails its test), into a folder of the session's own;
`REFUND_ADAPTER_SCREENSHOTS=docs/images python3 -m pytest tests/browser` writes them where the README shows them,
so an ordinary run leaves the checkout as it found it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from refund_adapter.config import parse_config
from refund_adapter.testing import TEST_ADMIN_TOKEN, free_port, local_config, serve
from refund_adapter.web.app import create_app

CHROMIUM = Path(os.environ.get("REFUND_ADAPTER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS_ENV = "REFUND_ADAPTER_SCREENSHOTS"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def playwright_api() -> Any:
    """Playwright's async API, or a skip with one line saying what to install."""
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install -y chromium (browser tests skipped)")
    return pytest.importorskip("playwright.async_api", reason="playwright is not installed: pip install playwright")


@pytest.fixture
async def browser(playwright_api: Any) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A page in a fresh context (no cookies), English unless a test switches, failing fast when a step hangs."""
    context = await browser.new_context(viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(15_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


@dataclass
class Dashboard:
    url: str
    app: Any


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[Dashboard]:
    """The service with TEST_ADMIN_TOKEN, a SQLite store and no platform, served on 127.0.0.1."""
    port = free_port()
    raw = local_config(tmp_path / "refunds.db", port, partner="2088101122136241", md5_key="k" * 32,
                       gateway_url="http://127.0.0.1:9/gateway.do", platforms={})
    app = create_app(parse_config(raw, env={}))
    async with serve(app, port=port) as url:
        yield Dashboard(url, app)


async def log_in(page: Any, base_url: str, token: str = TEST_ADMIN_TOKEN, *, next_path: str = "/admin/") -> None:
    """Fill the login form as an operator would and wait for the page it leads to."""
    await page.goto(f"{base_url}/admin/login?next={next_path}")
    await page.fill("#token", token)
    async with page.expect_navigation():
        await page.click("form[action='/admin/login'] button[type=submit]")


@pytest.fixture(scope="session")
def screenshots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where `screenshot` saves: $REFUND_ADAPTER_SCREENSHOTS (docs/images for the README), else a temporary folder."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def screenshot(page: Any, folder: Path, name: str) -> Path:
    """Save the whole page as FOLDER/NAME.png."""
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
