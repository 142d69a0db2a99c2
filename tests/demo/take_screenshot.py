"""Take docs/inbox.png from a running `leadsms demo` (not a test).

    .venv/bin/python -m tests.demo.take_screenshot 'http://127.0.0.1:8080/#key=lsk_...' [docs/inbox.png]

Opens the inbox in headless Chromium (Debian's, as the browser test does), opens the
newest conversation, and saves a 1280x800 PNG.
"""

from __future__ import annotations

import asyncio
import sys

from tests.demo.conftest import CHROMIUM, CHROMIUM_ARGS


async def take(url: str, out: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(url)
            first = page.locator("#conversation-list .conversation").first
            await first.wait_for()
            await first.click()
            await page.locator("#messages .bubble").first.wait_for()
            await page.wait_for_timeout(500)
            await page.screenshot(path=out)
        finally:
            await browser.close()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(take(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "docs/inbox.png"))
