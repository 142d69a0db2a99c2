"""Quiet hours and scheduled sends end to end: real web app, worker and sweeper processes,
the simulator. Windows and send_at are set relative to the real time (in a zone where it
is between 2 AM and 10 PM, so a window a few hours wide fits in one day at any hour)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from send_pipeline.quiet_hours import Window, decide
from tests.send_pipeline.conftest import add_lead, open_conversation, sim_view
from tests.support import stop_process, wait_for

pytestmark = pytest.mark.slow  # tens of seconds: `make test` starts it first



def comfortable_zone(now: datetime) -> str:
    """A zone where `now` is between 02:00 and 22:00 local."""
    for name in ("UTC", "Etc/GMT+6", "Etc/GMT-6"):
        local = now.astimezone(ZoneInfo(name))
        if 2 <= local.hour < 22:
            return name
    raise AssertionError("unreachable: one of three zones 6 h apart is always in 02:00-22:00")


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def window_around(now: datetime, closes_in_min: int, opened_min_ago: int = 60) -> tuple[str, str, datetime]:
    """(zone, texting hours, close time) for a window that opened `opened_min_ago` and
    closes `closes_in_min` minutes from `now` in that zone (negative: closed that long ago)."""
    zone = comfortable_zone(now)
    local = now.astimezone(ZoneInfo(zone))
    minute = local.hour * 60 + local.minute
    start, end = minute - opened_min_ago, minute + closes_in_min
    if closes_in_min > 0:
        end += 1  # the window closes at a whole minute after `closes_in_min` from now
    closes = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=end)
    return zone, f"{hhmm(start)}-{hhmm(end)}", closes


async def quiet_firm(make_firm, pool, *, closes_in_min: int, opened_min_ago: int = 60):
    """A firm whose leads (zone below) are inside a window that closes `closes_in_min`
    minutes from now (negative: it closed that long ago). Returns (firm, zone, close time)."""
    zone, hours, closes = window_around(datetime.now(timezone.utc), closes_in_min, opened_min_ago)
    firm = await make_firm(quiet_hours=hours)
    return firm, zone, closes


async def lead_conversation(pool, http, firm, phone: str, zone: str) -> int:
    lead_id = await add_lead(pool, firm.id, phone)
    await pool.execute("UPDATE leads SET timezone = $1 WHERE id = $2", zone, lead_id)
    return await open_conversation(http, firm, lead_id)


async def post(http, firm, conversation_id: int, **payload):
    async with http.post(f"/v1/conversations/{conversation_id}/messages", json=payload,
                         headers=firm.user()) as resp:
        return resp.status, await resp.json()


async def inbound(sim: str, from_: str, to: str, body: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim}/sim/inbound", json={"from": from_, "to": to, "body": body}) as resp:
            answer = await resp.json()
            assert answer["answer_status"] == 200, answer


async def status_of(pool, message_id: int) -> str:
    return await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id)


async def come_due_now(pool, message_id: int) -> None:
    """Move a scheduled message's send_at to now. The API refuses a send_at sooner than 10 s
    ahead; a test that is about what happens once it is due (not about the 10 s) skips the wait."""
    await pool.execute("UPDATE messages SET send_at = now() WHERE id = $1", message_id)


async def late_send_story(pool, message_id: int, start: datetime, end: datetime) -> str:
    """For an assertion's message: when the worker claimed the message, and the sweeper
    passes between two times (which one released it, how long each took), so a late send
    says whether it waited for the sweeper, the queue or Twilio."""
    claimed = await pool.fetchval("SELECT claimed_at FROM messages WHERE id = $1", message_id)
    rows = await pool.fetch(
        """SELECT started_at, finished_at - started_at AS took, summary FROM sweeper_passes
           WHERE finished_at >= $1 AND started_at <= $2 ORDER BY started_at""", start, end)
    passes = "\n".join(f"{r['started_at']:%H:%M:%S.%f} took {r['took']} {r['summary']}" for r in rows)
    return f"claimed at {claimed}; sweeper passes:\n{passes}"


@pytest.fixture
def sweeper(worker_pool, worker):
    """A real `leadsms sweeper` (SWEEP_INTERVAL_S from the test settings) beside the worker."""
    proc = worker_pool.start_sweeper()
    yield worker_pool.settings.sweep_interval_s
    stop_process(proc)


@pytest.mark.parametrize("closes_in_min", [-1, 90, 120])
def test_the_windows_these_tests_build_are_valid_and_mean_what_they_say_at_every_time_of_day(closes_in_min):
    """How `make test` passes at any hour: the windows above are built in a zone where it is
    02:00-22:00 now; checked here for every quarter hour (plus odd seconds) of a day."""
    base = datetime(2026, 3, 8, 0, 0, 7, tzinfo=timezone.utc)  # a DST day in the US, for good measure
    for quarter in range(96 * 2):
        now = base + timedelta(minutes=7.5 * quarter)
        zone, hours, closes = window_around(now, closes_in_min)
        window = Window.parse(hours)
        decision = decide(now, [zone], window, None, None, None)
        if closes_in_min < 0:
            assert not decision.allowed, (now, hours)
            assert timedelta(hours=20) < decision.next_allowed_at - now < timedelta(hours=23)
        else:
            assert decision.allowed and decision.closes_at == closes, (now, hours)
            assert timedelta(minutes=closes_in_min) < closes - now <= timedelta(minutes=closes_in_min + 1)


@pytest.mark.e2e
async def test_a_firm_whose_window_closed_a_minute_ago_refuses_with_409_and_thread_open_says_why(
        make_firm, pool, http, sim):
    firm, zone, _ = await quiet_firm(make_firm, pool, closes_in_min=-1)
    conversation_id = await lead_conversation(pool, http, firm, "+12125554001", zone)

    status, answer = await post(http, firm, conversation_id, body="Are you coming tonight?")
    assert status == 409, answer
    assert answer["code"] == "quiet_hours"
    assert answer["error"].startswith("It's ") and f"for this lead ({zone}). Texting hours are " in answer["error"]
    assert "; you can schedule this message for " in answer["error"]
    next_allowed = datetime.fromisoformat(answer["next_allowed_at"])
    assert timedelta(hours=20) < next_allowed - datetime.now(timezone.utc) < timedelta(hours=23)
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0

    async with http.get(f"/v1/conversations/{conversation_id}", headers=firm.headers) as resp:
        opened = await resp.json()
    assert opened["can_send"] is True
    assert opened["notice"]["code"] == "quiet_hours" and opened["notice"]["level"] == "info"
    assert opened["notice"]["text"].startswith("It's ")


@pytest.mark.e2e
async def test_a_send_scheduled_15_s_ahead_reaches_twilio_at_its_time_with_a_validity_ending_by_the_close(
        make_firm, pool, http, sim, sweeper):
    firm, zone, closes = await quiet_firm(make_firm, pool, closes_in_min=90)
    phone = "+12125554002"
    conversation_id = await lead_conversation(pool, http, firm, phone, zone)
    send_at = (datetime.now(timezone.utc) + timedelta(seconds=15)).replace(microsecond=0)

    status, message = await post(http, firm, conversation_id, body="See you at 8!",
                                 send_at=send_at.astimezone(ZoneInfo("America/Chicago")).isoformat())
    assert status == 202, message
    assert message["status"] == "scheduled"
    assert datetime.fromisoformat(message["send_at"]) == send_at
    assert (await sim_view(sim, phone))["attempts"] == []

    at_twilio = await wait_for(lambda: _messages(sim, phone), timeout=40, interval=0.2, what="the scheduled send")
    created = parsedate_to_datetime(at_twilio[0]["date_created"])
    assert send_at - timedelta(seconds=1) <= created <= send_at + timedelta(seconds=sweeper + 3), \
        await late_send_story(pool, message["id"], send_at - timedelta(seconds=3), created + timedelta(seconds=1))
    validity = at_twilio[0]["validity_period"]
    assert validity is not None and 0 < validity <= 36_000
    assert created + timedelta(seconds=validity) <= closes + timedelta(seconds=1)
    assert created + timedelta(seconds=validity) >= closes - timedelta(seconds=10)
    await wait_for(lambda: _status_in(pool, message["id"], ("sent", "delivered")), timeout=10, what="sent")


@pytest.mark.e2e
async def test_a_scheduled_send_whose_lead_texts_stop_before_it_is_due_ends_blocked(
        make_firm, pool, http, sim, sweeper):
    firm, zone, _ = await quiet_firm(make_firm, pool, closes_in_min=120)
    phone = "+12125554003"
    conversation_id = await lead_conversation(pool, http, firm, phone, zone)
    status, message = await post(http, firm, conversation_id, body="Reminder: tomorrow 9 AM",
                                 send_at=(datetime.now(timezone.utc) + timedelta(seconds=11)).isoformat())
    assert status == 202, message
    await inbound(sim, phone, firm.number, "STOP")
    await come_due_now(pool, message["id"])  # the STOP came first; now its time comes

    await wait_for(lambda: _status_in(pool, message["id"], ("blocked",)), timeout=40, interval=0.2,
                   what="the scheduled send blocked")
    assert await pool.fetchval("SELECT blocked_reason FROM messages WHERE id = $1", message["id"]) == "opted_out"
    assert (await sim_view(sim, phone))["attempts"] == []


@pytest.mark.e2e
async def test_a_cancel_on_reply_send_whose_lead_replies_first_ends_canceled(make_firm, pool, http, sim, sweeper):
    firm, zone, _ = await quiet_firm(make_firm, pool, closes_in_min=120)
    phone = "+12125554004"
    conversation_id = await lead_conversation(pool, http, firm, phone, zone)
    status, message = await post(http, firm, conversation_id, body="Still interested?", cancel_on_reply=True,
                                 send_at=(datetime.now(timezone.utc) + timedelta(seconds=11)).isoformat())
    assert status == 202, message
    await inbound(sim, phone, firm.number, "Yes, see you there")
    assert await status_of(pool, message["id"]) == "canceled"  # in the webhook's transaction
    await come_due_now(pool, message["id"])  # the reply came first; now its time comes

    # Past its send_at the sweeper has run several times; it stays canceled and unsent.
    await wait_for(lambda: pool.fetchval("SELECT now() > send_at + interval '2 seconds' FROM messages WHERE id = $1",
                                         message["id"]), timeout=30, interval=0.2, what="send_at passed")
    assert await status_of(pool, message["id"]) == "canceled"
    assert (await sim_view(sim, phone))["attempts"] == []


@pytest.mark.e2e
async def test_cancelling_a_scheduled_message_works_and_a_sent_one_is_409_not_scheduled(
        make_firm, pool, http, sim, worker):
    firm, zone, _ = await quiet_firm(make_firm, pool, closes_in_min=120)
    phone = "+12125554005"
    conversation_id = await lead_conversation(pool, http, firm, phone, zone)
    status, later = await post(http, firm, conversation_id, body="Later",
                               send_at=(datetime.now(timezone.utc) + timedelta(hours=1)).isoformat())
    assert status == 202 and later["status"] == "scheduled", later
    async with http.delete(f"/v1/messages/{later['id']}", headers=firm.headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "canceled"

    status, now_msg = await post(http, firm, conversation_id, body="Now")
    assert status == 202, now_msg
    await wait_for(lambda: _status_in(pool, now_msg["id"], ("sent", "delivered")), timeout=20, what="sent")
    async with http.delete(f"/v1/messages/{now_msg['id']}", headers=firm.headers) as resp:
        answer = await resp.json()
        assert resp.status == 409, answer
        assert answer["code"] == "not_scheduled"
    async with http.delete(f"/v1/messages/{later['id']}", headers=firm.headers) as resp:
        assert resp.status == 409  # canceled is final


@pytest.mark.parametrize("send_at", ["soon", "far", "2030-01-01T08:00:00", "tomorrow", 17])
async def test_a_bad_send_at_is_400_invalid_send_at(make_firm, pool, http, sim, send_at):
    firm = await make_firm()
    conversation_id = await lead_conversation(pool, http, firm, "+12125554006", "America/Chicago")
    now = datetime.now(timezone.utc)
    value = {"soon": (now + timedelta(seconds=5)).isoformat(),
             "far": (now + timedelta(days=31)).isoformat()}.get(send_at, send_at)
    status, answer = await post(http, firm, conversation_id, body="Hi", send_at=value)
    assert status == 400 and answer["code"] == "invalid_send_at", answer
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_a_send_at_in_quiet_hours_is_refused_at_once_and_the_same_text_at_two_times_is_two_messages(
        make_firm, pool, http, sim):
    firm, zone, closes = await quiet_firm(make_firm, pool, closes_in_min=120)
    conversation_id = await lead_conversation(pool, http, firm, "+12125554007", zone)
    after_close = closes + timedelta(minutes=5)
    status, answer = await post(http, firm, conversation_id, body="Night note", send_at=after_close.isoformat())
    assert status == 409 and answer["code"] == "quiet_hours", answer
    assert "next_allowed_at" in answer

    first_at = datetime.now(timezone.utc) + timedelta(minutes=10)
    s1, m1 = await post(http, firm, conversation_id, body="Same", send_at=first_at.isoformat())
    s2, m2 = await post(http, firm, conversation_id, body="Same", send_at=first_at.isoformat())
    s3, m3 = await post(http, firm, conversation_id, body="Same",
                        send_at=(first_at + timedelta(minutes=1)).isoformat())
    assert (s1, s2, s3) == (202, 200, 202)
    assert m2["deduplicated"] is True and m2["id"] == m1["id"] and m3["id"] != m1["id"]


async def _messages(sim: str, phone: str):
    return (await sim_view(sim, phone))["messages"]


async def _status_in(pool, message_id: int, statuses: tuple[str, ...]) -> bool:
    return (await status_of(pool, message_id)) in statuses
