"""Take docs/inbox.png and docs/inbox-mobile.png from a running `leadsms demo` (not a test).

    .venv/bin/python -m tests.demo.take_screenshot 'http://127.0.0.1:8080/#key=lsk_...' [docs]

Opens the inbox in headless Chromium (Debian's, as the browser tests do), opens the
newest conversation and types a draft (so the compose meter shows), and saves the desktop
view at 1280x800 as inbox.png and the phone view (the open thread) at 390x844 as
inbox-mobile.png.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.demo.conftest import CHROMIUM, CHROMIUM_ARGS

DRAFT = "Hi Maria, parking is free on Saturday. See you at 10!"


async def shoot(browser, url: str, out: Path, width: int, height: int) -> None:
    context = await browser.new_context(viewport={"width": width, "height": height})
    try:
        page = await context.new_page()
        await page.goto(url)
        first = page.locator("#conversation-list .conversation").first
        await first.wait_for()
        await first.click()
        await page.locator("#messages .bubble").first.wait_for()
        await page.locator("#compose-input").fill(DRAFT)
        await page.locator("#compose-input").blur()
        await page.wait_for_timeout(500)
        await page.screenshot(path=str(out))
    finally:
        await context.close()


async def take(url: str, folder: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            await shoot(browser, url, folder / "inbox.png", 1280, 800)
            await shoot(browser, url, folder / "inbox-mobile.png", 390, 844)
        finally:
            await browser.close()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(take(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else "docs")))
