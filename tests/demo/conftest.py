"""Fixtures for the inbox page and demo tests: the inbox served by a real app (the same
`create_app` as `leadsms web`, plus `portal.inbox_page` mounted here), headless Chromium driven
by Playwright, and a firm seeded through the real API and worker.

The inbox app listens on its own port; Twilio's callbacks still reach the `web` fixture's
app at PUBLIC_BASE_URL. Both share the test database, Redis and broker.
"""

from __future__ import annotations

import os
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


@pytest_asyncio.fixture
async def page(chromium) -> AsyncIterator[Any]:
    context = await chromium.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


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

