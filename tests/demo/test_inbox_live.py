"""The inbox page follows the change feed's stream: what arrives changes what is on screen,
in place, and nothing is read again on a timer.

Real everything, as in test_inbox_page.py: the page's API is a real app, sends go through
the real worker to the Twilio simulator, and its callbacks and inbound texts come back
through the webhooks and the event log to the page's EventSource.
"""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio

from devtools.demo.seed import Api
from tests.portal.support import add_lead as sql_lead, set_line

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

MARIA = "+12125552368"  # mobile: delivered
PRIYA = "+16465554821"  # mobile: delivered
WAIT_MS = 15_000
THREAD_READ = re.compile(r"/v1/conversations/\d+(/messages)?(\?|$)")


def expect(target: Any) -> Any:
    from playwright.async_api import expect as pw_expect

    return pw_expect(target)


@pytest_asyncio.fixture
async def seeded(firm, inbox, sim, worker, api_session, pool) -> SimpleNamespace:
    """Two leads as intake and lookup leave them (written with SQL: fast); everything the
    tests then do goes through the API, the worker and the simulator."""
    api = Api(api_session, inbox, sim, firm["api_key"])
    maria = {"lead_id": await sql_lead(pool, firm.id, "Maria Garcia", MARIA)}
    priya = {"lead_id": await sql_lead(pool, firm.id, "Priya Shah", PRIYA)}
    await set_line(pool, MARIA, "mobile")
    await set_line(pool, PRIYA, "mobile")
    return SimpleNamespace(api=api, firm=firm, sim=sim, maria=maria, priya=priya,
                           url=f"{inbox}/#key={firm['api_key']}")


async def conversation_of(seeded: SimpleNamespace, lead: dict[str, Any]) -> int:
    return (await seeded.api.call("POST", "/v1/conversations", {"lead_id": lead["lead_id"]}))["conversation_id"]


async def lead_texts(seeded: SimpleNamespace, phone: str, body: str) -> None:
    async with seeded.api.session.post(f"{seeded.sim}/sim/inbound",
                                       json={"from": phone, "to": seeded.firm.number, "body": body}) as resp:
        assert (await resp.json())["answer_status"] == 200


def record_requests(page: Any) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(f"{request.method} {request.url}"))
    return seen


async def test_a_reply_and_a_status_change_arrive_in_the_open_thread_keeping_focus_selection_and_draft(seeded, page):
    maria = await conversation_of(seeded, seeded.maria)
    await seeded.api.call("POST", f"/v1/conversations/{maria}/messages", {"body": "See you on Saturday at 10."},
                          user="alex")
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    await page.goto(f"{seeded.url}&conversation={maria}")
    first = page.locator(".bubble-out", has_text="See you on Saturday")
    await expect(first.locator(".bubble-status")).to_have_text("Delivered", timeout=WAIT_MS)
    compose = page.locator("#compose-input")
    await expect(compose).to_be_focused()  # opening a thread puts the cursor in the compose box

    # a draft with a selection in it, and a mark on the nodes on screen (a rebuild loses it)
    await page.keyboard.type("Thanks, and bring a friend")
    await compose.evaluate("n => n.setSelectionRange(8, 11)")
    await page.evaluate("""() => {
        document.querySelectorAll('#messages .bubble, #conversation-list .conversation')
            .forEach(n => { n.__kept = true; });
    }""")
    await lead_texts(seeded, MARIA, "Can I bring my husband?")

    reply = page.locator(".bubble-in", has_text="Can I bring my husband?")
    await expect(reply).to_be_visible(timeout=WAIT_MS)
    await expect(compose).to_be_focused()
    assert await compose.evaluate("n => [n.value, n.selectionStart, n.selectionEnd]") == [
        "Thanks, and bring a friend", 8, 11]
    row = page.locator(".conversation", has_text="Maria Garcia")
    await expect(row.locator(".reply-marker")).to_have_text("Needs reply")
    await expect(page).to_have_title("(1) Messages · leadsms")
    assert await page.evaluate("""() => [...document.querySelectorAll(
        '#messages .bubble-out, #conversation-list .conversation')].every(n => n.__kept)""")
    await expect(page.locator("#live")).to_contain_text("New reply from Maria Garcia")

    # a text selected in a bubble survives a status change arriving for another message
    await page.evaluate("""() => {
        const body = document.querySelector('.bubble-in .bubble-body');
        const range = document.createRange();
        range.selectNodeContents(body);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
    }""")
    sent = await seeded.api.call("POST", f"/v1/conversations/{maria}/messages", {"body": "Of course, see you!"},
                                 user="alex")
    bubble = page.locator(f'.bubble-out[data-id="{sent["id"]}"]')
    await expect(bubble.locator(".bubble-status")).to_have_text("Delivered", timeout=WAIT_MS)
    assert await page.evaluate("getSelection().toString()") == "Can I bring my husband?"
    assert await page.evaluate("document.activeElement.id") == "compose-input"
    await expect(compose).to_have_value("Thanks, and bring a friend")
    await expect(page).to_have_title("Messages · leadsms")  # the reply has been answered
    await expect(row.locator(".reply-marker")).to_have_count(0)
    assert not failed, failed  # the favicon included: nothing on the page answered 4xx/5xx


async def test_an_idle_open_thread_reads_nothing_again_for_30_seconds(seeded, page):
    """The page has no polling timer; a fake clock runs its timers for 30 s at once, and
    a real second then lets anything they started reach the network."""
    maria = await conversation_of(seeded, seeded.maria)
    await seeded.api.call("POST", f"/v1/conversations/{maria}/messages", {"body": "Hello!"}, user="alex")
    await page.clock.install()
    await page.goto(f"{seeded.url}&conversation={maria}")
    await expect(page.locator(".bubble-out .bubble-status")).to_have_text("Delivered", timeout=WAIT_MS)
    await expect(page.locator("#thread-loading")).to_be_hidden()
    seen = record_requests(page)
    await page.clock.run_for(30_000)
    await page.wait_for_timeout(1_000)
    assert [r for r in seen if THREAD_READ.search(r)] == []
    # not even the list: the stream is one request, open since the start (the browser may
    # still fetch the page's icon by itself, which is no API request)
    assert [r for r in seen if "/v1/" in r] == []


async def test_a_rejected_api_key_stops_the_page_with_a_clear_message(inbox, page, console):
    console.expect(r"status of 401")
    seen = record_requests(page)
    await page.clock.install()
    await page.goto(f"{inbox}/#key=lsk_not_a_key")
    await expect(page.locator("#error")).to_contain_text("The API key was refused. The inbox has stopped")
    await expect(page.locator("#key-form")).to_contain_text("it sends no more requests")
    await expect(page.locator("#layout")).to_be_hidden()
    before = len(seen)
    await page.clock.run_for(120_000)
    await page.wait_for_timeout(500)
    assert seen[before:] == []
    assert len([r for r in seen if "/v1/" in r]) == 1  # the first refusal, and nothing after


async def test_a_slow_thread_shows_it_is_loading_then_focuses_the_compose_box(seeded, page):
    maria = await conversation_of(seeded, seeded.maria)
    await seeded.api.call("POST", f"/v1/conversations/{maria}/messages", {"body": "Hi Maria"}, user="alex")
    await page.goto(seeded.url)
    row = page.locator(".conversation", has_text="Maria Garcia")
    await expect(row).to_be_visible()
    release = asyncio.Event()

    async def slow(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await page.route(re.compile(r"/v1/conversations/\d+/messages"), slow)
    await row.click()
    await expect(page.locator("#thread-loading")).to_have_text("Loading messages…")
    await expect(page.locator("#compose-input")).not_to_be_focused()
    release.set()
    await expect(page.locator(".bubble-out", has_text="Hi Maria")).to_be_visible()
    await expect(page.locator("#thread-loading")).to_be_hidden()
    await expect(page.locator("#compose-input")).to_be_focused()


async def test_a_lead_opened_from_the_picker_joins_the_list_with_its_first_message(seeded, page):
    await page.goto(seeded.url)
    await expect(page.locator("#list-empty")).to_have_text(
        "No conversations yet. Start one with “+ New conversation”.")
    await page.get_by_role("button", name="+ New conversation").click()
    await page.get_by_placeholder("Search leads by name, email or phone").fill("Priya")
    await page.locator(".picker-item", has_text="Priya Shah").click()
    await expect(page.locator("#thread-name")).to_have_text("Priya Shah")
    await expect(page.locator(".thread-empty")).to_have_text("No messages yet.")
    await expect(page.locator("#compose-input")).to_be_focused()
    await expect(page.locator(".conversation")).to_have_count(0)  # an empty thread is not in the list
    await page.wait_for_timeout(300)  # (any event of the open would have landed by now)
    await expect(page.locator(".conversation")).to_have_count(0)

    await page.keyboard.type("Hi Priya, thanks for signing up!")
    await page.keyboard.press("Enter")
    row = page.locator(".conversation", has_text="Priya Shah")
    await expect(row).to_have_count(1)
    await expect(row.locator(".conversation-preview")).to_have_text("You: Hi Priya, thanks for signing up!")
    await expect(page.locator("#list-empty")).to_be_hidden()
    await expect(page.locator(".bubble-out .bubble-status")).to_have_text("Delivered", timeout=WAIT_MS)
    await expect(row.locator(".tag")).to_have_text("Delivered")
    await expect(page.locator(".thread-empty")).to_have_count(0)


async def test_the_same_text_sent_twice_quickly_shows_one_bubble_at_once(seeded, page):
    priya = await conversation_of(seeded, seeded.priya)
    answers: list[Any] = []

    async def keep(response: Any) -> None:
        if response.request.method == "POST" and response.url.endswith("/messages"):
            answers.append(await response.json())

    page.on("response", keep)
    await page.goto(f"{seeded.url}&conversation={priya}")
    compose = page.locator("#compose-input")
    await expect(compose).to_be_focused()
    for _ in range(2):
        await page.keyboard.type("Doors open at 6:30")
        await page.keyboard.press("Enter")
        await expect(page.locator("#send")).to_have_text("Send")  # answered
    for _ in range(100):
        if len(answers) == 2:
            break
        await asyncio.sleep(0.05)
    assert answers[0]["id"] == answers[1]["id"] and answers[1]["deduplicated"] is True
    bubbles = page.locator(".bubble-out", has_text="Doors open at 6:30")
    await expect(bubbles).to_have_count(1)
    await expect(bubbles.locator(".bubble-status")).to_have_text("Delivered", timeout=WAIT_MS)
    await expect(bubbles).to_have_count(1)


async def test_a_dropped_stream_comes_back_with_a_fresh_token_and_misses_nothing(seeded, page):
    maria = await conversation_of(seeded, seeded.maria)
    await seeded.api.call("POST", f"/v1/conversations/{maria}/messages", {"body": "Hello!"}, user="alex")
    tokens: list[str] = []
    page.on("request", lambda r: tokens.append(re.search(r"token=([^&]+)", r.url)[1])
            if "/v1/events/stream?" in r.url else None)
    cut = asyncio.Event()

    async def stream(route: Any) -> None:
        if not cut.is_set():  # the first stream ends at once, as a restarted web would end it
            cut.set()
            await route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=": bye\n\n")
        else:
            await route.continue_()

    await page.route(re.compile(r"/v1/events/stream\?"), stream)
    await page.goto(f"{seeded.url}&conversation={maria}")
    await cut.wait()
    await lead_texts(seeded, MARIA, "Running 5 minutes late")  # while the page has no stream
    await expect(page.locator(".bubble-in", has_text="Running 5 minutes late")).to_be_visible(timeout=WAIT_MS)
    assert len(tokens) == 2 and tokens[0] != tokens[1]  # a new token for the new stream
    await expect(page.locator(".bubble-in")).to_have_count(1)


async def test_a_cursor_the_feed_no_longer_keeps_reloads_the_screen_and_keeps_the_draft(seeded, page, pool,
                                                                                        console):
    console.expect(r"status of 410 .*/v1/events\?limit=1&after=")  # the feed's answer the page acts on
    maria = await conversation_of(seeded, seeded.maria)
    await seeded.api.call("POST", f"/v1/conversations/{maria}/messages", {"body": "Hello!"}, user="alex")
    answered: list[str] = []
    page.on("response", lambda r: answered.append(f"{r.status} {r.url}") if "/v1/events?" in r.url else None)

    async def stream(route: Any) -> None:  # every stream ends at once while this route is on
        await route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=": bye\n\n")

    await page.route(re.compile(r"/v1/events/stream\?"), stream)
    await page.goto(f"{seeded.url}&conversation={maria}")
    await expect(page.locator(".bubble-out", has_text="Hello!")).to_be_visible()
    await page.locator("#compose-input").fill("a draft")
    later = await seeded.api.call("POST", f"/v1/conversations/{maria}/messages", {"body": "Parking is free."},
                                  user="alex")
    # the sweeper pruned the events the page has not read yet
    await pool.execute("""INSERT INTO event_prune_marks (firm_id, pruned_to)
                          SELECT $1, max(seq) FROM events WHERE firm_id = $1
                          ON CONFLICT (firm_id) DO UPDATE SET pruned_to = EXCLUDED.pruned_to""", seeded.firm.id)
    await page.unroute(re.compile(r"/v1/events/stream\?"))

    await expect(page.locator(f'.bubble-out[data-id="{later["id"]}"]')).to_be_visible(timeout=WAIT_MS)
    assert any(a.startswith("410 ") for a in answered), answered
    await lead_texts(seeded, MARIA, "Is there parking?")  # and the new stream is live
    await expect(page.locator(".bubble-in", has_text="Is there parking?")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#compose-input")).to_have_value("a draft")
    await expect(page.locator(".bubble-out", has_text="Hello!")).to_have_count(1)


async def test_an_erased_lead_leaves_the_list_and_the_open_thread_says_so(seeded, page):
    maria = await conversation_of(seeded, seeded.maria)
    priya = await conversation_of(seeded, seeded.priya)
    for conv in (maria, priya):
        await seeded.api.call("POST", f"/v1/conversations/{conv}/messages", {"body": "Hello!"}, user="alex")
    await page.goto(f"{seeded.url}&conversation={maria}")
    rows = page.locator(".conversation")
    await expect(rows).to_have_count(2)
    await expect(page.locator(".bubble-out", has_text="Hello!")).to_be_visible()

    await seeded.api.call("POST", "/v1/erasure", {"phone": MARIA}, user="alex")  # conversation.deleted
    await expect(page.locator("#thread-placeholder")).to_have_text("This conversation was deleted.",
                                                                   timeout=WAIT_MS)
    await expect(page.locator("#thread-view")).to_be_hidden()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Priya Shah")
