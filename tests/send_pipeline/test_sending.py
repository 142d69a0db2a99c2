"""End to end: the web app, a real `leadsms worker` on Redis, and the Twilio simulator."""

import asyncio

import pytest

from send_pipeline import queries, sending
from consent import ledger as consent
from conversations.sendable import NOTICES, rate_limit_text
from tests.send_pipeline.conftest import add_lead, post_send, sim_view
from tests.support import wait_for

pytestmark = pytest.mark.slow  # tens of seconds: `make test` starts it first

PHONE = "+12125551234"


async def status_of(pool, message_id):
    return await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id)


async def until_sent(pool, message_id, timeout=15):
    await wait_for(lambda: _is_out(pool, message_id), timeout=timeout, what=f"message {message_id} sent")
    return await pool.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)


async def _is_out(pool, message_id):
    return await status_of(pool, message_id) in ("sent", "delivered")


async def test_a_send_reaches_twilio_once_from_the_firms_number(worker, http, firm, thread, pool, sim, settings):
    conv = await thread(PHONE)
    status, body, _ = await post_send(http, firm.user("u1"), conv, "See you at the seminar, Dana!")
    assert status == 202
    row = await until_sent(pool, body["id"])
    view = await sim_view(sim, PHONE)
    assert len(view["messages"]) == 1
    at_twilio = view["messages"][0]
    assert at_twilio["from"] == firm.number
    assert at_twilio["body"] == "See you at the seminar, Dana!"
    assert at_twilio["status_callback"] == f"{settings.public_base_url}/twilio/status?m={body['id']}"
    assert row["twilio_sid"] == at_twilio["sid"]
    async with http.get(f"/v1/messages/{body['id']}", headers=firm.headers) as resp:
        shown = await resp.json()
    assert shown["twilio_sid"] == at_twilio["sid"] and shown["status"] in ("sent", "delivered")
    assert len((await sim_view(sim, PHONE))["attempts"]) == 1


async def test_the_eleventh_send_in_a_minute_is_429_while_a_colleague_still_sends(worker, http, firm, thread, pool, sim):
    conv = await thread(PHONE)
    for n in range(10):
        status, _, _ = await post_send(http, firm.user("u1"), conv, f"Reminder {n}")
        assert status == 202
    status, body, headers = await post_send(http, firm.user("u1"), conv, "Reminder 10")
    assert status == 429
    assert body == {"error": rate_limit_text(10), "code": "rate_limited", "retry_after": body["retry_after"]}
    assert body["error"] == "Rate limit: 10 messages per minute. Try again shortly."
    assert 1 <= int(headers["Retry-After"]) <= 60
    status, colleague, _ = await post_send(http, firm.user("u2"), conv, "Reminder 10")
    assert status == 202
    await until_sent(pool, colleague["id"])
    await wait_for(lambda: pool.fetchval("SELECT bool_and(status IN ('sent', 'delivered')) FROM messages"),
                   timeout=15, what="every accepted send sent")
    assert len((await sim_view(sim, PHONE))["messages"]) == 11


async def test_two_identical_sends_100ms_apart_are_one_message_and_2_5s_later_a_new_one(worker, http, firm, thread, pool, sim, deps):
    conv = await thread(PHONE)
    user = firm.user("u1")

    async def window_keys():
        return await deps.redis.keys("leadsms:dedupe:*")

    first = asyncio.create_task(post_send(http, user, conv, "Are you coming?"))
    # The first request holds the duplicate window before the second is made (no sleep
    # deciding which one is first).
    await wait_for(window_keys, timeout=10, interval=0.01, what="the first send to open its duplicate window")
    s2, second, _ = await post_send(http, user, conv, "Are you coming?")
    s1, first_body, _ = await first
    assert (s1, s2) == (202, 200)
    assert second["id"] == first_body["id"] and second["deduplicated"] is True
    await until_sent(pool, first_body["id"])

    async def window_closed():
        return not await window_keys()

    await wait_for(window_closed, timeout=10, interval=0.02, what="the 2 s duplicate window to close")
    s3, third, _ = await post_send(http, user, conv, "Are you coming?")
    assert s3 == 202 and third["id"] != first_body["id"]
    await until_sent(pool, third["id"])
    assert [m["body"] for m in (await sim_view(sim, PHONE))["messages"]] == ["Are you coming?"] * 2


async def test_a_duplicate_of_a_rate_limited_send_is_not_deduplicated_into_nothing(worker, http, firm, thread, pool):
    conv = await thread(PHONE)
    for n in range(10):
        assert (await post_send(http, firm.user("u1"), conv, f"n{n}"))[0] == 202
    assert (await post_send(http, firm.user("u1"), conv, "late"))[0] == 429
    assert (await post_send(http, firm.user("u1"), conv, "late"))[0] == 429
    await wait_for(lambda: pool.fetchval("SELECT bool_and(twilio_sid IS NOT NULL) FROM messages"),
                   timeout=15, what="the accepted sends to go out")


UNSENDABLE = [
    ("INSERT INTO phone_lines (phone_e164, valid, line_type) SELECT $2, true, 'landline' WHERE $1::bigint > 0",
     "landline"),
    ("INSERT INTO phone_lines (phone_e164, valid) SELECT $2, false WHERE $1::bigint > 0", "invalid_phone"),
    ("INSERT INTO phone_flags (firm_id, phone_e164, opted_out, opted_out_at, opted_out_source)"
     " VALUES ($1, $2, true, now(), 'keyword:stop')", "opted_out"),
    ("INSERT INTO phone_flags (firm_id, phone_e164, review_pending) VALUES ($1, $2, true)", "review_opt_out"),
    ("INSERT INTO phone_flags (firm_id, phone_e164, blocked, blocked_at, blocked_reason)"
     " VALUES ($1, $2, true, now(), 'filtered')", "blocked"),
]


@pytest.mark.parametrize("setup, code", UNSENDABLE, ids=[c for _, c in UNSENDABLE])
async def test_a_send_to_a_phone_that_cannot_be_texted_is_409_and_never_reaches_twilio(
        worker, http, firm, thread, pool, sim, setup, code):
    conv = await thread(PHONE)
    await pool.execute(setup, firm.id, PHONE)  # $1 firm, $2 phone
    status, body, _ = await post_send(http, firm.user("u1"), conv, "Hello?")
    assert status == 409
    assert (body["code"], body["error"]) == (code, NOTICES[code].text)
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert (await sim_view(sim))["attempts"] == []


@pytest.mark.parametrize("status, phone, code", [("missing", None, "no_phone"), ("pending", PHONE, "pending"),
                                                 ("invalid", "12", "invalid_phone")])
async def test_a_lead_without_a_valid_phone_cannot_be_texted(worker, http, firm, pool, sim, status, phone, code):
    lead_id = await add_lead(pool, firm.id, phone, status=status)
    async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=firm.headers) as resp:
        assert (resp.status, (await resp.json())["code"]) == (409, code)
    assert (await sim_view(sim))["attempts"] == []


async def test_a_stop_recorded_after_enqueue_blocks_the_send(deps, firm, thread, pool, sim):
    conv = await thread(PHONE)
    row = await pool.fetchrow("SELECT nextval('messages_id_seq') AS id")
    await queries.insert_queued_message(pool, row["id"], firm.id, conv, "Last chance to register!", "u1", 1)
    async with pool.acquire() as conn, conn.transaction():
        await consent.opt_out(conn, firm.id, PHONE, "keyword:stop")
    assert (await sending.send_message(deps, row["id"])).result == "blocked"
    stored = await pool.fetchrow("SELECT status, blocked_reason, twilio_sid FROM messages WHERE id = $1", row["id"])
    assert tuple(stored) == ("blocked", "opted_out", None)
    assert (await sim_view(sim))["attempts"] == []
    assert (await sending.send_message(deps, row["id"])).result == "skipped"


async def test_a_stop_recorded_between_enqueue_and_the_worker_blocks_the_send(worker, firm, thread, pool, sim):
    from send_pipeline.actors import send_message

    conv = await thread(PHONE)
    message_id = await pool.fetchval("SELECT nextval('messages_id_seq')")
    await queries.insert_queued_message(pool, message_id, firm.id, conv, "Last chance to register!", "u1", 1)
    send_message.send_with_options(args=(message_id,), delay=800)  # the worker gets it in 0.8 s
    async with pool.acquire() as conn, conn.transaction():
        await consent.opt_out(conn, firm.id, PHONE, "keyword:stop")
    await wait_for(lambda: _has_status(pool, message_id, "blocked"), what="the worker to block the send")
    assert await pool.fetchval("SELECT blocked_reason FROM messages WHERE id = $1", message_id) == "opted_out"
    assert (await sim_view(sim))["attempts"] == []


async def test_a_message_that_is_not_queued_is_left_alone(deps, firm, thread, pool, sim):
    conv = await thread(PHONE)
    msg_id = await pool.fetchval("SELECT nextval('messages_id_seq')")
    await queries.insert_queued_message(pool, msg_id, firm.id, conv, "Hi", "u1", 1)
    await pool.execute("UPDATE messages SET status = 'sent', twilio_sid = 'SMx' WHERE id = $1", msg_id)
    assert (await sending.send_message(deps, msg_id)).result == "skipped"
    assert (await sim_view(sim))["attempts"] == []


@pytest.mark.parametrize("phone, scenario", [
    ("+12125550512", "flaky: 500 twice, then accepted"),
    ("+12125550612", "throttled: 429 once"),
    ("+12125550912", "ambiguous: created, then 500"),
])
async def test_a_troubled_number_ends_with_exactly_one_message_at_twilio(
        worker, sweeping, callbacks_off, http, firm, thread, pool, sim, phone, scenario):
    # Status callbacks off: the send and the sweeper alone must settle it.
    conv = await thread(phone)
    status, body, _ = await post_send(http, firm.user("u1"), conv, f"Hello ({scenario})")
    assert status == 202
    row = await until_sent(pool, body["id"], timeout=25)
    view = await sim_view(sim, phone)
    assert len(view["messages"]) == 1, scenario
    assert row["twilio_sid"] == view["messages"][0]["sid"]
    assert row["status"] == "sent"


async def _has_status(pool, message_id, status):
    return await status_of(pool, message_id) == status


async def test_a_send_adds_its_accept_to_twilio_time_to_the_latency_histogram(metrics_http, worker, http, firm, thread, pool):
    conv = await thread(PHONE)
    status, body, _ = await post_send(http, firm.user("u1"), conv, "Counting this one")
    assert status == 202
    await until_sent(pool, body["id"])

    async def histogram_count():
        async with metrics_http.get("/metrics") as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith("leadsms_send_accept_to_twilio_seconds_count"):
                    return float(line.split()[-1]) == 1.0
        return False

    await wait_for(histogram_count, timeout=10, what="the send latency histogram to count one send")
