"""The inbox page's list at scale (paging and search) and its phone layout, in Chromium."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio

from tests.demo.test_inbox_live import expect
from tests.portal.support import add_conversation, add_lead, add_message, set_flag, set_line

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

COUNT = 150
SPECIAL = {0: ("Olivia Stone", "opted_out", "Opted out"), 1: ("Harold Finch", "landline", "Landline"),
           2: ("Blake Carter", "blocked", "Blocked")}


def phone(n: int) -> str:
    return f"+1646555{3000 + n:04d}"


@pytest_asyncio.fixture
async def many(firm, inbox, pool) -> SimpleNamespace:
    """150 conversations with a message each, written with SQL; the three oldest are the
    opted-out, landline and blocked leads the picker never offers. The five newest end
    with the lead's reply."""
    names = []
    for n in range(COUNT):
        name, flag, _ = SPECIAL.get(n, (f"Lead {n:03d}", None, None))
        await add_lead(pool, firm.id, name, phone(n))
        await set_line(pool, phone(n), "landline" if flag == "landline" else "mobile")
        if flag in ("opted_out", "blocked"):
            await set_flag(pool, firm.id, phone(n), flag)
        conv = await add_conversation(pool, firm.id, phone(n))
        await add_message(pool, firm.id, conv, f"Hello {name}, see you at the seminar.")
        if n >= COUNT - 5:
            await add_message(pool, firm.id, conv, "Thanks, I'll be there!", direction="in")
        names.append(name)
    return SimpleNamespace(names=names, url=f"{inbox}/#key={firm['api_key']}")


async def row_names(page: Any) -> list[str]:
    return await page.locator("#conversation-list .conversation-name").all_inner_texts()


async def test_150_conversations_are_reachable_by_scrolling_and_by_search(many, page):
    await page.goto(many.url)
    rows = page.locator("#conversation-list .conversation")
    await expect(rows.first).to_contain_text("Lead 149")
    await expect(page).to_have_title("(5) Messages · leadsms")  # the five that wait for a reply
    await expect(rows.first.locator(".reply-marker")).to_have_text("Needs reply")
    assert await rows.count() < COUNT  # one page at a time

    for _ in range(10):  # scroll to the end of the list until nothing more comes
        count = await rows.count()
        if count == COUNT:
            break
        await page.locator("#conversation-list").evaluate("n => { n.scrollTop = n.scrollHeight; }")
        await expect(rows).not_to_have_count(count)
    assert await row_names(page) == list(reversed(many.names))
    for n, (name, _, tag) in SPECIAL.items():
        await expect(page.locator(".conversation", has_text=name).locator(".tag")).to_have_text(tag)
    await expect(page.locator("#list-status")).to_be_hidden()

    search = page.get_by_label("Search conversations")
    await search.fill("olivia")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator(".tag")).to_have_text("Opted out")
    await search.fill("(646) 555-3001")  # digits typed as staff would
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Harold Finch")
    await search.fill("Lead 00")
    await expect(rows).to_have_count(7)  # Lead 003 .. Lead 009
    await search.fill("Lead")  # 147 matches: paged as the user scrolls, like the whole list
    await expect(rows.first).to_contain_text("Lead 149")
    while await rows.count() < COUNT - 3:
        count = await rows.count()
        await page.locator("#conversation-list").evaluate("n => { n.scrollTop = n.scrollHeight; }")
        await expect(rows).not_to_have_count(count)
    assert len(set(await row_names(page))) == COUNT - 3
    await search.fill("nobody here")
    await expect(page.locator("#list-empty")).to_have_text("No conversation matches “nobody here”.")
    await expect(rows).to_have_count(0)
    await search.fill("")
    await expect(rows.first).to_contain_text("Lead 149")
    await page.locator(".conversation", has_text="Lead 149").click()
    await expect(page.locator(".bubble-in .bubble-body")).to_have_text("Thanks, I'll be there!")


async def no_sideways_scroll(page: Any) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 0, f"the page scrolls {width}px sideways"


async def inside(page: Any, locator: Any) -> None:
    """The element is wholly on screen, and its text is not cut."""
    box = await locator.bounding_box()
    viewport = page.viewport_size
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 0.5, (box, viewport)
    assert await locator.evaluate("n => n.scrollWidth <= n.clientWidth"), await locator.inner_text()


@pytest_asyncio.fixture
async def few(firm, inbox, pool) -> SimpleNamespace:
    for n, name in enumerate(["Maria Alejandra Garcia-Fernández de la Torre", "Priya Shah", "Sam Lee"]):
        await add_lead(pool, firm.id, name, phone(n))
        await set_line(pool, phone(n), "mobile")
        conv = await add_conversation(pool, firm.id, phone(n))
        await add_message(pool, firm.id, conv, "Hi! A long line without spaces: " + "x" * 80)
        await add_message(pool, firm.id, conv, "Sure, see you at 10:00 on Saturday.", direction="in")
    return SimpleNamespace(url=f"{inbox}/#key={firm['api_key']}")


@pytest.mark.parametrize("width", [390, 360, 430])
async def test_on_a_phone_the_list_and_the_thread_take_turns_with_nothing_cut(few, phone_page, width):
    page = phone_page
    await page.set_viewport_size({"width": width, "height": 844})
    await page.goto(few.url)
    rows = page.locator("#conversation-list .conversation")
    await expect(rows).to_have_count(3)
    await expect(page.locator("#thread")).to_be_hidden()  # the list alone
    await no_sideways_scroll(page)
    for n in range(3):
        await inside(page, rows.nth(n).locator(".conversation-time"))  # "10:05 AM", never "10:0"
    await page.get_by_role("button", name="+ New conversation").click()
    await inside(page, page.get_by_role("button", name="Close the lead search"))
    await page.get_by_role("button", name="Close the lead search").click()

    await rows.first.click()
    await expect(page.locator("#sidebar")).to_be_hidden()  # the thread alone
    await expect(page.locator(".bubble-in")).to_be_visible()
    await no_sideways_scroll(page)
    for name in ("Back to conversations", "Send", "Mark as opted out"):
        await inside(page, page.get_by_role("button", name=name, exact=True))
    await inside(page, page.locator("#meter"))
    await inside(page, page.locator("#compose-input"))
    await page.keyboard.type("Great, thanks! 😀")
    await no_sideways_scroll(page)
    await inside(page, page.locator("#meter-hint"))

    await page.get_by_role("button", name="Back to conversations").click()
    await expect(page.locator("#thread")).to_be_hidden()
    await expect(rows.first).to_be_focused()
    await no_sideways_scroll(page)
