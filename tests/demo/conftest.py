"""Fixtures for the inbox page and demo tests: the inbox served by a real app (the same
`create_app` as `leadsms web`, plus `portal.inbox_page` mounted here), headless Chromium driven
by Playwright, and a firm seeded through the real API and worker.

The inbox app listens on its own port; Twilio's callbacks still reach the `web` fixture's
app at PUBLIC_BASE_URL. Both share the test database, Redis and broker.
"""

from __future__ import annotations

import contextlib

import os
import re
import shutil
from typing import Any, AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from devtools.demo.seed import Api
from tests.support import serve_app, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None. Never downloads a browser."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the browser test needs the playwright package (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        how = "apt-get install -y chromium" if shutil.which("apt-get") else "install Debian's chromium"
        return (f"the browser test needs {CHROMIUM} (Debian's chromium), which is absent and could "
                f"not be installed here; `make test` installs it when run as root ({how})")
    return None


@pytest_asyncio.fixture(scope="session")
async def inbox(settings, deps, broker, web, sim) -> AsyncIterator[str]:
    """The API with the inbox page and the demo reply route; yields its base URL."""
    from portal import inbox_page as inbox_routes
    from shared.app import create_app

    app = create_app(settings, deps=deps, broker=broker)
    inbox_routes.add_routes(app, demo_sim_url=sim)
    async with serve_app(app) as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


class ConsoleWatch:
    """What the page printed to the console as errors, and the failed requests a test
    expects (a refused send is a 4xx, which Chromium logs as "Failed to load resource")."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected: list[str] = []  # regexes of console errors this test causes on purpose

    def expect(self, pattern: str) -> None:
        self.expected.append(pattern)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(re.search(p, e) for p in self.expected)]


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


async def new_page(chromium: Any, console: ConsoleWatch, width: int = 1280, height: int = 800) -> tuple[Any, Any]:
    """A fresh context and page whose JavaScript errors and console errors land in `console`."""
    context = await chromium.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.on("pageerror", lambda exc: console.errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: console.errors.append(f"console: {msg.text} ({msg.location.get('url', '')})")
            if msg.type == "error" else None)
    return context, page


@contextlib.asynccontextmanager
async def checked_page(chromium, console, *size: int) -> AsyncIterator[Any]:
    """A page of its own context, closed after; then no console error the test did not expect."""
    context, page = await new_page(chromium, console, *size)
    try:
        yield page
    finally:
        await context.close()
    assert not console.unexpected(), f"errors on the page's console: {console.unexpected()}"


@pytest_asyncio.fixture
async def page(chromium, console) -> AsyncIterator[Any]:
    """A desktop-sized page (1280x800); the test fails on any console error it did not expect."""
    async with checked_page(chromium, console) as page:
        yield page


@pytest_asyncio.fixture
async def phone_page(chromium, console) -> AsyncIterator[Any]:
    """A phone-sized page (390x844), with the same console check."""
    async with checked_page(chromium, console, 390, 844) as page:
        yield page


@pytest_asyncio.fixture
async def api_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def add_lead(api: Api, external_id: str, name: str, phone: str, **extra: Any) -> dict[str, Any]:
    """A lead through the CRM hook, once intake and lookup are done with it."""
    answer = await api.call("POST", "/v1/leads", {"external_id": external_id, "name": name, "phone": phone,
                                                  "email": extra.pop("email", ""), "event": "Open House", **extra})

    async def settled() -> dict[str, Any] | None:
        lead = await api.call("GET", f"/v1/leads/{answer['lead_id']}")
        done = lead["phone_status"] != "pending" and (lead["phone_status"] != "valid" or lead["line_type"])
        return lead if done else None

    return await wait_for(settled, timeout=15, what=f"lead {name} validated and looked up")

