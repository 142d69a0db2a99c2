"""The compose box of the inbox page: the segment meter, quiet hours and scheduled sends,
and the staff opt-out, in headless Chromium against the real API, worker and simulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from conversations.sendable import NOTICES
from devtools.demo.seed import Api
from shared.segments import segment_info
from tests.demo.test_inbox_live import expect
from tests.portal.support import add_lead, set_line

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

MARIA = "+12125552368"
WAIT_MS = 15_000

# the meter and shared/segments.py must agree on every one of these
TEXTS = {
    "gsm7": "Hi Maria, the seminar starts at 10:00 @ Room 4 (parking: £5). Reply STOP to opt out.",
    "gsm7_160": "x" * 160,
    "gsm7_161": "x" * 161,
    "extended": "Price: 20€ [early bird] {members} ~ ^ | \\ " + "a" * 117,  # 160 septets: one segment
    "extended_split": "€" * 77,  # 154 septets: an escape pair never straddles two segments
    "emoji": "See you there 😀",
    "emoji_70": "😀" * 35,
    "emoji_71": "😀" * 35 + "!",
    "accented": "Café crème, señor: ça va?",  # ç and ê are not GSM-7
    "long_gsm7": ("Seminar reminder. " * 100)[:1600],
    "long_emoji": ("Bring a friend 🎉 " * 100)[:1600],
}


@pytest_asyncio.fixture
async def thread(firm, inbox, sim, worker, api_session, pool) -> SimpleNamespace:
    lead = await add_lead(pool, firm.id, "Maria Garcia", MARIA)
    await set_line(pool, MARIA, "mobile")
    api = Api(api_session, inbox, sim, firm["api_key"])
    conv = (await api.call("POST", "/v1/conversations", {"lead_id": lead}))["conversation_id"]
    return SimpleNamespace(api=api, firm=firm, conv=conv, url=f"{inbox}/#key={firm['api_key']}&conversation={conv}")


async def test_the_meter_counts_characters_and_segments_as_the_server_does(thread, page):
    await page.goto(thread.url)
    compose = page.locator("#compose-input")
    meter = page.locator("#meter")
    hint = page.locator("#meter-hint")
    await expect(compose).to_be_focused()
    await expect(meter).to_have_text("0 / 160 · 1 segment")

    await page.keyboard.type("a" * 148)
    await expect(meter).to_have_text("148 / 160 · 1 segment")
    await expect(hint).to_be_hidden()
    await page.keyboard.type("€")  # two septets
    await expect(meter).to_have_text("150 / 160 · 1 segment")
    await page.keyboard.type("😀")
    await expect(meter).to_have_text("151 / 201 · 3 segments · Unicode")
    await expect(hint).to_have_text(
        "Emoji or special characters switch this text to Unicode: 70 characters per segment (“😀” is the first).")

    for name, text in TEXTS.items():
        await compose.fill(text)
        encoding, segments = segment_info(text)
        assert await meter.get_attribute("data-segments") == str(segments), name
        assert await meter.get_attribute("data-encoding") == encoding, name
    assert await meter.get_attribute("data-units") == "1694"  # 1,600 characters; the emoji count two
    await expect(meter).not_to_contain_text("too long")  # 1,600 characters is allowed
    await compose.fill(TEXTS["emoji"])
    await expect(hint).to_contain_text("(“😀” is the first)")
    await compose.fill(TEXTS["accented"])
    await expect(hint).to_contain_text("(“ç” is the first)")
    await compose.fill("x" * 1601)
    await expect(meter).to_contain_text("too long: at most 1,600 characters")

    # and what the server stores for a sent text is what the meter said
    for name in ("extended_split", "emoji_71", "long_gsm7"):
        await compose.fill(TEXTS[name])
        shown = await meter.get_attribute("data-segments")
        await compose.press("Enter")
        await expect(page.locator("#send")).to_have_text("Send")
    sent = (await thread.api.call("GET", f"/v1/conversations/{thread.conv}/messages"))["items"]
    assert [m["segments"] for m in sent] == [segment_info(TEXTS[n])[1] for n in ("extended_split", "emoji_71",
                                                                                  "long_gsm7")]
    assert str(sent[-1]["segments"]) == shown


def closed_window(now: datetime) -> tuple[str, datetime]:
    """Texting hours (for a lead in UTC) that are closed now and open within the day."""
    local = now.astimezone(ZoneInfo("UTC"))
    minute = local.hour * 60 + local.minute
    start = (minute + 120) % 1440 if minute + 180 < 1440 else 60
    end = start + 60
    opens = local.replace(hour=start // 60, minute=start % 60, second=0, microsecond=0)
    if opens <= local:
        opens += timedelta(days=1)
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}", opens


async def test_in_quiet_hours_a_refused_send_offers_to_schedule_it_and_the_schedule_can_be_cancelled(
        make_firm, inbox, sim, worker, api_session, pool, page, console):
    console.expect(r"status of 409")  # the refused send
    hours, opens = closed_window(datetime.now(timezone.utc))
    firm = await make_firm(quiet_hours=hours)
    lead = await add_lead(pool, firm.id, "Night Owl", MARIA)
    await pool.execute("UPDATE leads SET timezone = 'UTC' WHERE id = $1", lead)
    await set_line(pool, MARIA, "mobile")
    api = Api(api_session, inbox, sim, firm["api_key"])
    conv = (await api.call("POST", "/v1/conversations", {"lead_id": lead}))["conversation_id"]
    await page.goto(f"{inbox}/#key={firm['api_key']}&conversation={conv}")

    notice = page.locator("#notice")
    await expect(notice).to_have_attribute("data-code", "quiet_hours")
    await expect(notice).to_contain_text("for this lead (UTC). Texting hours are")
    await expect(page.locator("#compose-input")).to_be_visible()  # can_send is still true
    await page.keyboard.type("Good morning! Doors open at 9.")
    await page.keyboard.press("Enter")

    at = f"{opens.hour % 12 or 12}:{opens.minute:02d} {'AM' if opens.hour < 12 else 'PM'}"
    schedule = page.get_by_role("button", name=f"Schedule for {at}")
    await expect(schedule).to_be_visible()
    await expect(notice).to_contain_text(f"you can schedule this message for {at}")
    await expect(page.locator("#compose-input")).to_have_value("Good morning! Doors open at 9.")
    await expect(page.locator(".bubble")).to_have_count(0)
    await expect(page.locator("#error")).to_be_hidden()  # not an error: the notice says what to do
    await schedule.click()

    bubble = page.locator(".bubble-out", has_text="Doors open at 9.")
    await expect(bubble.locator(".bubble-status")).to_contain_text("Scheduled for ")
    await expect(page.locator("#compose-input")).to_have_value("")
    await expect(schedule).to_be_hidden()
    [message] = (await api.call("GET", f"/v1/conversations/{conv}/messages"))["items"]
    assert message["status"] == "scheduled"
    assert datetime.fromisoformat(message["send_at"]) == opens
    await expect(page.locator(".conversation .tag")).to_have_text("Scheduled")  # it joined the list

    await bubble.get_by_role("button", name="Cancel this scheduled message").click()
    await expect(bubble.locator(".bubble-status")).to_have_text("Canceled")
    await expect(bubble.get_by_role("button")).to_have_count(0)
    assert (await api.call("GET", f"/v1/messages/{message['id']}"))["status"] == "canceled"


async def test_staff_mark_a_lead_as_opted_out_from_the_thread(thread, page):
    await page.goto(thread.url)
    await expect(page.locator("#compose-input")).to_be_focused()
    await page.get_by_role("button", name="Mark as opted out").click()
    await expect(page.locator("#opt-out-confirm")).to_contain_text("Stop all texts to this lead?")
    await page.get_by_role("button", name="Keep").click()  # changed their mind: nothing recorded
    await expect(page.locator("#opt-out-confirm")).to_be_hidden()
    assert (await thread.api.call("GET", f"/v1/consent/{MARIA.replace('+', '%2B')}"))["items"] == []

    await page.get_by_role("button", name="Mark as opted out").click()
    await page.get_by_role("button", name="Opt out", exact=True).click()
    await expect(page.locator("#notice")).to_have_text(NOTICES["opted_out"].text)
    await expect(page.locator("#compose")).to_be_hidden()
    await expect(page.get_by_role("button", name="Mark as opted out")).to_be_hidden()
    [event] = (await thread.api.call("GET", f"/v1/consent/{MARIA.replace('+', '%2B')}"))["items"]
    assert event["kind"] == "opt_out" and event["source"] == "staff:demo-user"
