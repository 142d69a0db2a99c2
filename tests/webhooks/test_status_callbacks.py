"""Delivery-status callbacks move messages forward, count carrier filtering, and block."""

import asyncio

import aiohttp

from conversations.sendable import NOTICES, decide_for_phone
from tests.support import wait_for
from tests.webhooks.support import (
    add_outbound,
    consent_history,
    flag_events,
    flags,
    message,
    send_status,
    settle,
)
from webhooks import service

PHONE = "+16465551234"


async def _fail(http, settings, pool, deps, firm_id, phone, code=30007, status="undelivered"):
    """One outbound message to `phone` that Twilio reports undelivered with `code`, applied."""
    sid = f"SM{firm_id}x{await pool.fetchval('SELECT count(*) FROM messages')}"
    message_id = await add_outbound(pool, firm_id, phone, sid=sid)
    assert (await send_status(http, settings, message_id=message_id, sid=sid, status=status, error_code=code)).status == 204
    await settle(deps)
    return message_id


async def _deliver(http, settings, pool, deps, firm_id, phone):
    sid = f"SM{firm_id}d{await pool.fetchval('SELECT count(*) FROM messages')}"
    message_id = await add_outbound(pool, firm_id, phone, sid=sid)
    assert (await send_status(http, settings, message_id=message_id, sid=sid, status="delivered")).status == 204
    await settle(deps)
    return message_id


async def test_simulator_callbacks_drive_messages_to_delivered_and_to_undelivered_with_the_error(
        http, settings, deps, pool, firm, webhook_worker, sim):
    delivered_phone, filtered_phone = "+16465557777", "+16465550150"  # 0150: the simulator's 30007 row
    ids = {}
    for phone in (delivered_phone, filtered_phone):
        message_id = await add_outbound(pool, firm.id, phone)
        sent = await deps.twilio.send_message(
            to=phone, from_=firm.number, body="Doors open at 6",
            status_callback=f"{settings.public_base_url}/twilio/status?m={message_id}")
        await pool.execute("UPDATE messages SET twilio_sid = $2, status = 'sent' WHERE id = $1", message_id, sent.sid)
        ids[phone] = message_id

    async def final():
        rows = [await message(pool, ids[p]) for p in (delivered_phone, filtered_phone)]
        return rows if all(r["status"] in ("delivered", "undelivered") for r in rows) else None

    delivered, filtered = await wait_for(final, timeout=15, what="both messages final")
    assert (delivered["status"], delivered["twilio_status"], delivered["error_code"]) == ("delivered", "delivered", None)
    assert (filtered["status"], filtered["twilio_status"], filtered["error_code"]) == ("undelivered", "undelivered", 30007)
    assert filtered["error_message"] == "Message filtered"
    assert (await flags(pool, firm.id, filtered_phone))["consecutive_filter_failures"] == 1
    async with aiohttp.ClientSession() as s, s.get(f"{sim}/sim/callbacks?kind=status") as r:
        answers = [c["answer_status"] for c in (await r.json())["callbacks"]]
    assert answers and set(answers) == {204}


async def test_three_30007_in_a_row_block_the_phone_for_that_firm_only(http, settings, deps, pool, make_firm):
    firm, other = await make_firm(), await make_firm()
    await _deliver(http, settings, pool, deps, other.id, PHONE)
    for n in range(1, 3):
        await _fail(http, settings, pool, deps, firm.id, PHONE)
        assert (await flags(pool, firm.id, PHONE))["consecutive_filter_failures"] == n
        assert (await decide_for_phone(pool, firm.id, PHONE)).sendable
    last = await _fail(http, settings, pool, deps, firm.id, PHONE)

    blocked = await flags(pool, firm.id, PHONE)
    assert blocked["blocked"] and blocked["blocked_at"] is not None and "30007" in blocked["blocked_reason"]
    decision = await decide_for_phone(pool, firm.id, PHONE)
    assert (decision.sendable, decision.code) == (False, "blocked")
    assert decision.notice.text == NOTICES["blocked"].text
    assert (await decide_for_phone(pool, other.id, PHONE)).sendable  # another firm still texts it
    assert await flag_events(pool, firm.id, PHONE) == [
        ("filter_failure", None), ("filter_failure", None), ("filter_failure", None), ("blocked", "auto")]
    audit = await pool.fetchrow("SELECT * FROM phone_flag_events WHERE kind = 'blocked'")
    assert audit["message_id"] == last


async def test_every_filtering_code_counts_towards_the_block(http, settings, deps, pool, firm):
    await _fail(http, settings, pool, deps, firm.id, PHONE, code=30003)
    await _fail(http, settings, pool, deps, firm.id, PHONE, code=30008, status="failed")
    assert not (await flags(pool, firm.id, PHONE))["blocked"]
    await _fail(http, settings, pool, deps, firm.id, PHONE, code=30004, status="failed")
    assert (await flags(pool, firm.id, PHONE))["blocked"]


async def test_a_delivery_in_between_resets_the_count(http, settings, deps, pool, firm):
    await _fail(http, settings, pool, deps, firm.id, PHONE)
    await _fail(http, settings, pool, deps, firm.id, PHONE)
    await _deliver(http, settings, pool, deps, firm.id, PHONE)
    assert (await flags(pool, firm.id, PHONE))["consecutive_filter_failures"] == 0
    await _fail(http, settings, pool, deps, firm.id, PHONE)
    await _fail(http, settings, pool, deps, firm.id, PHONE)
    state = await flags(pool, firm.id, PHONE)
    assert (state["consecutive_filter_failures"], state["blocked"]) == (2, False)
    assert (await decide_for_phone(pool, firm.id, PHONE)).sendable
    kinds = [k for k, _ in await flag_events(pool, firm.id, PHONE)]
    assert kinds == ["filter_failure", "filter_failure", "filter_reset", "filter_failure", "filter_failure"]


async def test_a_replayed_callback_is_applied_once(http, settings, deps, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid="SMreplay")
    for _ in range(3):
        answer = await send_status(http, settings, message_id=message_id, sid="SMreplay", status="undelivered",
                                   error_code=30007)
        assert answer.status == 204
        await settle(deps)
    # the same row applied again (a sweeper re-enqueue, a second worker) is a no-op too
    rows = await pool.fetch("SELECT id, outcome FROM twilio_inbox WHERE message_sid = 'SMreplay'")
    assert [r["outcome"] for r in rows] == ["status:undelivered"]
    assert await service.apply_status(deps, rows[0]["id"]) is None
    assert (await flags(pool, firm.id, PHONE))["consecutive_filter_failures"] == 1


async def test_sent_after_delivered_does_not_regress_the_status(http, settings, deps, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid="SMlate")
    await send_status(http, settings, message_id=message_id, sid="SMlate", status="delivered")
    await settle(deps)
    await send_status(http, settings, message_id=message_id, sid="SMlate", status="sent")
    await settle(deps)
    row = await message(pool, message_id)
    assert row["status"] == "delivered"
    assert row["twilio_status"] == "sent"  # Twilio's word as last received; ours stays delivered


async def test_callbacks_applied_out_of_order_keep_the_latest_twilio_status(http, settings, deps, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid="SMorder")
    await send_status(http, settings, message_id=message_id, sid="SMorder", status="sent")
    await send_status(http, settings, message_id=message_id, sid="SMorder", status="delivered")
    sent_row, delivered_row = [r["id"] for r in await pool.fetch(
        "SELECT id FROM twilio_inbox WHERE message_sid = 'SMorder' ORDER BY id")]
    await service.apply_status(deps, delivered_row)
    await service.apply_status(deps, sent_row)
    row = await message(pool, message_id)
    assert (row["status"], row["twilio_status"]) == ("delivered", "delivered")


async def test_concurrent_callbacks_for_one_message_end_in_its_final_status(http, settings, deps, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid="SMrace")
    for status in ("queued", "sent", "undelivered"):
        await send_status(http, settings, message_id=message_id, sid="SMrace", status=status, error_code=30007)
    rows = [r["id"] for r in await pool.fetch("SELECT id FROM twilio_inbox WHERE message_sid = 'SMrace' ORDER BY id")]
    await asyncio.gather(*(service.apply_status(deps, i) for i in reversed(rows)))
    row = await message(pool, message_id)
    assert (row["status"], row["error_code"]) == ("undelivered", 30007)
    assert (await flags(pool, firm.id, PHONE))["consecutive_filter_failures"] == 1


async def test_a_callback_that_arrives_before_the_sid_is_stored_is_applied(http, settings, deps, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid=None)  # the send's answer is not in yet
    answer = await send_status(http, settings, message_id=message_id, sid="SMearly", status="sent")
    assert answer.status == 204
    await settle(deps)
    row = await message(pool, message_id)
    assert (row["status"], row["twilio_status"], row["twilio_sid"]) == ("sent", "sent", "SMearly")
    await send_status(http, settings, message_id=message_id, sid="SMearly", status="delivered")
    await settle(deps)
    assert (await message(pool, message_id))["status"] == "delivered"


async def test_a_callback_without_our_id_finds_the_message_by_its_sid(http, settings, deps, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid="SMbysid", status="sent")
    await send_status(http, settings, message_id=None, sid="SMbysid", status="delivered")
    assert await settle(deps, "status") == ["status:delivered"]
    assert (await message(pool, message_id))["status"] == "delivered"


async def test_a_callback_for_no_message_of_ours_is_kept_as_unmatched(http, settings, deps, pool, firm):
    await send_status(http, settings, message_id=987654, sid="SMnobody", status="delivered")
    assert await settle(deps, "status") == ["unmatched"]


async def test_a_blocked_message_keeps_its_status(http, settings, deps, pool, firm):
    message_id = await pool.fetchval(
        "UPDATE messages SET status = 'blocked', blocked_reason = 'opted_out' WHERE id = $1 RETURNING id",
        await add_outbound(pool, firm.id, PHONE, sid="SMblk", status="queued"))
    await send_status(http, settings, message_id=message_id, sid="SMblk", status="delivered")
    await settle(deps)
    assert (await message(pool, message_id))["status"] == "blocked"


async def test_21610_on_a_callback_opts_the_phone_out(http, settings, deps, pool, firm):
    await _fail(http, settings, pool, deps, firm.id, PHONE, code=21610, status="failed")
    assert await consent_history(pool, firm.id, PHONE) == [("opt_out", "twilio_21610")]
    assert (await decide_for_phone(pool, firm.id, PHONE)).code == "opted_out"


async def test_30005_and_21211_mark_the_phone_invalid_for_every_signup(http, settings, deps, pool, make_firm):
    from tests.webhooks.support import add_lead

    firm, other = await make_firm(), await make_firm()
    lead = await add_lead(pool, firm.id, PHONE, external_id="x1")
    other_lead = await add_lead(pool, other.id, PHONE, external_id="x2")
    await _fail(http, settings, pool, deps, firm.id, PHONE, code=30005)
    for lead_id in (lead, other_lead):
        row = await pool.fetchrow("SELECT phone_status, phone_error FROM leads WHERE id = $1", lead_id)
        assert (row["phone_status"], row["phone_error"]) == ("invalid", "twilio_30005")
    assert (await decide_for_phone(pool, firm.id, PHONE)).code == "invalid_phone"
    assert await flag_events(pool, firm.id, PHONE) == [("invalidated", None)]

    second = "+16465554321"
    await add_lead(pool, firm.id, second, external_id="x3")
    await _fail(http, settings, pool, deps, firm.id, second, code=21211, status="failed")
    assert await pool.fetchval("SELECT phone_error FROM leads WHERE phone_e164 = $1", second) == "twilio_21211"


async def test_30006_counts_a_failure_and_asks_lookup_again(http, settings, deps, pool, firm, sim, webhook_worker):
    await pool.execute("INSERT INTO phone_lines (phone_e164, valid, line_type, checked_at) "
                       "VALUES ($1, true, 'mobile', now() - interval '1 day')", PHONE)  # well within the TTL
    await _fail(http, settings, pool, deps, firm.id, PHONE, code=30006)
    assert (await flags(pool, firm.id, PHONE))["consecutive_filter_failures"] == 1

    async def looked_up():
        async with aiohttp.ClientSession() as s, s.get(f"{sim}/sim/lookups") as r:
            return [x for x in (await r.json())["lookups"] if x["phone_number"] == PHONE]

    await wait_for(looked_up, timeout=10, what="a forced Lookup of the phone despite its cached line type")
