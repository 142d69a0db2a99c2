"""The inbox page in headless Chromium: what a staff member sees and does.

Real everything: the page calls the portal API of a real app, sends go through the real
worker to the Twilio simulator, whose signed callbacks and inbound texts come back
through the webhooks. Nothing on the page is mocked; one test holds a send request in
the browser to see the page while the message is on its way.
"""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio

from conversations.sendable import NOTICES, rate_limit_text
from devtools.demo.seed import Api
from tests.demo.conftest import add_lead

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

MARIA = "(212) 555-2368"  # mobile: delivered
PRIYA = "(646) 555-4821"  # mobile: delivered
HAROLD = "212-555-0042"  # 0001–0099: landline at Lookup
HAROLD_E164 = "+12125550042"
WAIT_MS = 15_000


def expect(target: Any) -> Any:
    from playwright.async_api import expect as pw_expect

    return pw_expect(target)


@pytest_asyncio.fixture
async def seeded(firm, inbox, sim, worker, api_session) -> SimpleNamespace:
    api = Api(api_session, inbox, sim, firm["api_key"])
    maria = await add_lead(api, "crm-maria", "Maria Garcia", MARIA, email="maria.garcia@example.com")
    priya = await add_lead(api, "crm-priya", "Priya Shah", PRIYA, email="priya.shah@example.com")
    harold = await add_lead(api, "crm-harold", "Harold Finch", HAROLD, email="harold.finch@example.com")
    assert harold["line_type"] == "landline"
    return SimpleNamespace(api=api, firm=firm, maria=maria, priya=priya, harold=harold,
                           url=f"{inbox}/#key={firm['api_key']}")


async def lead_texts(sim: str, seeded: SimpleNamespace, phone: str, body: str) -> None:
    """The lead texts the firm: a signed inbound text from the simulator, through the webhook."""
    async with seeded.api.session.post(f"{sim}/sim/inbound",
                                       json={"from": phone, "to": seeded.firm.number, "body": body}) as resp:
        assert (await resp.json())["answer_status"] == 200


async def open_conversation(seeded: SimpleNamespace, lead: dict[str, Any]) -> int:
    conv = await seeded.api.call("POST", "/v1/conversations", {"lead_id": lead["lead_id"]})
    return conv["conversation_id"]


async def test_staff_start_a_conversation_from_the_picker_and_see_it_delivered(seeded, page, sim, api_session):
    await open_conversation(seeded, seeded.maria)  # an older conversation, lower in the list
    priya = await open_conversation(seeded, seeded.priya)
    await seeded.api.call("POST", f"/v1/conversations/{priya}/messages", {"body": "Hi Priya!"}, user="alex")
    await page.goto(seeded.url)
    conversations = page.locator("#conversation-list .conversation")
    await expect(conversations.first).to_contain_text("Priya Shah")

    await page.get_by_role("button", name="+ New conversation").click()
    search = page.get_by_placeholder("Search leads by name, email or phone")
    await search.fill("M")
    await expect(page.locator("#picker-hint")).to_have_text("Type at least 2 characters.")
    await expect(page.locator(".picker-item")).to_have_count(0)
    await search.fill("Harold")  # a landline: not offered
    await expect(page.locator("#picker-hint")).to_have_text("No lead you can text matches.")
    await search.fill("Mar")
    await expect(page.locator(".picker-item")).to_have_count(1)
    await page.locator(".picker-item", has_text="Maria Garcia").click()
    await expect(page.locator("#thread-name")).to_have_text("Maria Garcia")

    release = asyncio.Event()

    async def hold_send(route: Any) -> None:
        if route.request.method == "POST":
            await release.wait()
        await route.continue_()

    await page.route(lambda url: url.endswith("/messages"), hold_send)
    compose = page.locator("#compose-input")
    await compose.click()
    await page.keyboard.type("Hi Maria,")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("see you Saturday")
    await expect(compose).to_have_value("Hi Maria,\nsee you Saturday")  # Shift+Enter did not send
    await page.keyboard.press("Enter")

    send_button = page.locator("#send")
    bubble = page.locator(".bubble-out", has_text="see you Saturday")
    await expect(send_button).to_have_text("Sending…")
    await expect(bubble).to_be_visible()  # at once, before the server has answered
    await expect(bubble.locator(".bubble-status")).to_have_text("Sending…")  # one word for it everywhere
    await expect(conversations.first).to_contain_text("Maria Garcia")  # moved to the top
    release.set()

    await expect(send_button).to_have_text("Send")
    await expect(bubble.locator(".bubble-status")).to_have_text("Delivered", timeout=WAIT_MS)
    async with api_session.get(f"{sim}/sim/messages", params={"to": "+12125552368"}) as resp:
        at_twilio = (await resp.json())["messages"]
    assert [(m["body"], m["from"]) for m in at_twilio] == [("Hi Maria,\nsee you Saturday", seeded.firm.number)]


async def test_a_landline_lead_shows_the_yellow_notice_and_no_compose_box(seeded, page, sim):
    await open_conversation(seeded, seeded.harold)
    await lead_texts(sim, seeded, HAROLD_E164, "Is this the seminar line?")  # joins the list with a message
    await page.goto(seeded.url)
    await page.locator(".conversation", has_text="Harold Finch").click()

    notice = page.locator("#notice")
    await expect(notice).to_have_text(NOTICES["landline"].text)
    await expect(notice).to_have_class(re.compile(r"\bnotice-warning\b"))
    assert await notice.evaluate("n => getComputedStyle(n).backgroundColor") == "rgb(255, 246, 214)"  # yellow
    await expect(page.locator("#compose")).to_be_hidden()
    await expect(page.locator(".conversation", has_text="Harold Finch").locator(".tag")).to_have_text("Landline")


async def test_a_lead_texting_stop_replaces_the_compose_box_with_the_opt_out_notice(seeded, page):
    maria = await open_conversation(seeded, seeded.maria)
    await page.goto(f"{seeded.url}&conversation={maria}")
    await expect(page.locator("#compose-input")).to_be_visible()

    await page.get_by_placeholder("Reply as the lead (e.g. STOP)").fill("STOP")
    await page.get_by_role("button", name="Lead replies").click()

    await expect(page.locator("#notice")).to_have_text(NOTICES["opted_out"].text, timeout=WAIT_MS)
    await expect(page.locator("#compose")).to_be_hidden()
    await expect(page.locator(".bubble-in", has_text="STOP")).to_be_visible(timeout=WAIT_MS)
    refused = await seeded.api.call("POST", f"/v1/conversations/{maria}/messages", {"body": "Hello?"},
                                    user="demo-user", ok=(409,))
    assert refused["code"] == "opted_out"


async def test_a_refused_send_shows_the_error_in_red_at_the_top(seeded, page, settings, console):
    maria = await open_conversation(seeded, seeded.maria)
    console.expect(r"status of 429")  # the refused send, as Chromium logs it
    for n in range(settings.send_rate_limit):  # the page's user has used up its minute
        await seeded.api.call("POST", f"/v1/conversations/{maria}/messages", {"body": f"Reminder {n}"},
                              user="demo-user")
    await page.goto(f"{seeded.url}&conversation={maria}")
    compose = page.locator("#compose-input")
    await compose.fill("One more thing")
    await compose.press("Enter")

    banner = page.locator("#error")
    await expect(banner).to_contain_text(rate_limit_text(settings.send_rate_limit))
    assert await banner.evaluate("n => getComputedStyle(n).color") == "rgb(164, 22, 26)"  # red
    assert await banner.evaluate("n => n.getBoundingClientRect().top") < 80  # at the top
    await expect(compose).to_have_value("One more thing")  # kept, to try again
    await expect(page.locator(".bubble-out", has_text="One more thing")).to_have_count(0)


async def test_names_and_messages_are_shown_as_text_never_as_markup(seeded, page):
    lead = await add_lead(seeded.api, "crm-eve", '<img src=x onerror="window.pwned=1">Eve', "(646) 555-9032")
    conv = await open_conversation(seeded, lead)
    await seeded.api.call("POST", f"/v1/conversations/{conv}/messages",
                          {"body": "<b>bold?</b><script>window.pwned=2</script>"}, user="alex")
    await page.goto(f"{seeded.url}&conversation={conv}")

    await expect(page.locator("#thread-name")).to_have_text('<img src=x onerror="window.pwned=1">Eve')
    await expect(page.locator(".bubble-body")).to_have_text("<b>bold?</b><script>window.pwned=2</script>")
    assert await page.locator("#conversation-list img, #messages img, #messages b").count() == 0
    assert await page.evaluate("window.pwned") is None


async def test_the_page_without_a_key_asks_for_one(inbox, page):
    await page.goto(inbox + "/")
    await expect(page.get_by_label("API key")).to_be_visible()
    await expect(page.locator("#layout")).to_be_hidden()
