"""Inbound texts: consent keywords take effect before Twilio has its answer; replies join
the one conversation for the phone; a reply that reads like an opt-out pauses sends."""

from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from conversations.sendable import NOTICES, decide_for_phone
from tests.support import wait_for
from tests.webhooks.support import (
    add_lead,
    consent_history,
    flag_events,
    flags,
    open_thread,
    post_message,
    send_inbound,
    settle,
)
from webhooks import service

PHONE = "+16465551234"
OPTED_OUT_TEXT = ("This lead has opted out of SMS. You can't send messages until they text START to opt back in.")


@pytest.mark.parametrize("body, word", [
    ("STOP", "stop"), ("stop", "stop"), (" Stop. ", "stop"), ("OPT OUT", "opt out"), ("revoke", "revoke"),
])
async def test_an_inbound_stop_blocks_sends_as_soon_as_the_webhook_has_answered(http, settings, pool, firm, body, word):
    conversation_id = await open_thread(http, pool, firm, PHONE)
    assert (await decide_for_phone(pool, firm.id, PHONE)).sendable
    answer = await send_inbound(http, settings, from_=PHONE, to=firm.number, body=body)
    assert answer.status == 200
    # no worker has run: the opt-out was written with the inbox row, before the answer
    decision = await decide_for_phone(pool, firm.id, PHONE)
    assert (decision.sendable, decision.code, decision.notice.text) == (False, "opted_out", OPTED_OUT_TEXT)
    status, refused = await post_message(http, firm, conversation_id, "Are you still coming?")
    assert (status, refused["code"], refused["error"]) == (409, "opted_out", OPTED_OUT_TEXT)
    assert await consent_history(pool, firm.id, PHONE) == [("opt_out", f"keyword:{word}")]


async def test_start_opts_back_in_and_a_repeated_stop_adds_nothing(http, settings, deps, pool, firm):
    for body in ("STOP", "stop", "START", "Stop.", "yes"):
        assert (await send_inbound(http, settings, from_=PHONE, to=firm.number, body=body)).status == 200
    assert await consent_history(pool, firm.id, PHONE) == [
        ("opt_out", "keyword:stop"), ("opt_in", "keyword:start"), ("opt_out", "keyword:stop"), ("opt_in", "keyword:yes")]
    assert (await decide_for_phone(pool, firm.id, PHONE)).sendable
    sids = await pool.fetch("SELECT message_sid FROM consent_events ORDER BY id")
    assert all(r["message_sid"].startswith("SM") for r in sids)
    # every keyword text is also in the thread, in order
    await settle(deps)
    bodies = [r["body"] for r in await pool.fetch("SELECT body FROM messages ORDER BY created_at, id")]
    assert bodies == ["STOP", "stop", "START", "Stop.", "yes"]


async def test_a_stop_to_one_firm_leaves_the_other_firm_free_to_text(http, settings, pool, make_firm):
    firm, other = await make_firm(), await make_firm()
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="STOP")
    assert (await decide_for_phone(pool, firm.id, PHONE)).code == "opted_out"
    assert (await decide_for_phone(pool, other.id, PHONE)).sendable


async def test_help_changes_nothing(http, settings, deps, pool, firm):
    assert (await send_inbound(http, settings, from_=PHONE, to=firm.number, body="HELP")).status == 200
    await settle(deps)
    assert await flags(pool, firm.id, PHONE) is None
    assert await consent_history(pool, firm.id, PHONE) == []
    assert await pool.fetchval("SELECT body FROM messages") == "HELP"


async def test_a_stop_texted_through_the_simulator_is_honoured(http, settings, deps, pool, firm, sim, webhook_worker):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim}/sim/inbound", json={"from": PHONE, "to": firm.number, "body": "Stop"}) as r:
            delivered = await r.json()
    assert delivered["answer_status"] == 200
    assert delivered["answer_body"] == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    assert (await decide_for_phone(pool, firm.id, PHONE)).code == "opted_out"
    row = await wait_for(lambda: pool.fetchrow("SELECT * FROM messages WHERE twilio_sid = $1", delivered["message_sid"]),
                         timeout=10, what="the worker to file the STOP in the thread")
    assert (row["direction"], row["status"], row["body"]) == ("in", "received", "Stop")


async def test_a_reply_from_a_phone_with_three_signups_lands_in_one_conversation_tied_to_the_newest(
        http, settings, deps, pool, firm):
    now = datetime.now(timezone.utc)
    await add_lead(pool, firm.id, PHONE, external_id="a", signed_up_at=now - timedelta(days=30))
    newest = await add_lead(pool, firm.id, PHONE, external_id="b", signed_up_at=now - timedelta(days=1))
    await add_lead(pool, firm.id, PHONE, external_id="c", signed_up_at=now - timedelta(days=10))
    for body in ("Is parking free?", "And is there lunch?"):
        await send_inbound(http, settings, from_=PHONE, to=firm.number, body=body)
    await settle(deps)
    conversations = await pool.fetch("SELECT * FROM conversations WHERE firm_id = $1", firm.id)
    assert len(conversations) == 1
    conversation = conversations[0]
    assert (conversation["phone_e164"], conversation["lead_id"]) == (PHONE, newest)
    assert conversation["last_message_at"] is not None
    thread = await pool.fetch("SELECT * FROM messages WHERE conversation_id = $1 ORDER BY created_at, id", conversation["id"])
    assert [(m["direction"], m["status"], m["body"]) for m in thread] == [
        ("in", "received", "Is parking free?"), ("in", "received", "And is there lunch?")]
    inbox_times = [r["received_at"] for r in await pool.fetch(
        "SELECT received_at FROM twilio_inbox WHERE kind = 'inbound' ORDER BY id")]
    assert [m["received_at"] for m in thread] == inbox_times


async def test_a_reply_from_an_unknown_sender_opens_a_conversation_without_a_lead(http, settings, deps, pool, firm):
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="Who is this?")
    assert await settle(deps) == ["filed"]
    conversation = await pool.fetchrow("SELECT * FROM conversations")
    assert (conversation["firm_id"], conversation["phone_e164"], conversation["lead_id"]) == (firm.id, PHONE, None)


async def test_a_text_to_a_number_no_firm_owns_is_kept_as_unrouted(http, settings, deps, pool, firm):
    answer = await send_inbound(http, settings, from_=PHONE, to="+16465559999", body="STOP")
    assert answer.status == 200
    assert await settle(deps) == ["unrouted"]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await pool.fetchval("SELECT count(*) FROM consent_events") == 0


async def test_a_replayed_inbound_text_is_filed_once(http, settings, deps, pool, firm):
    for _ in range(2):
        await send_inbound(http, settings, from_=PHONE, to=firm.number, body="See you there", sid="SMsame")
        await settle(deps)
    inbox_id = await pool.fetchval("SELECT id FROM twilio_inbox WHERE message_sid = 'SMsame'")
    assert await service.handle_inbound(deps, inbox_id) is None
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_please_stop_texting_me_pauses_sends_until_staff_review_it(http, settings, deps, pool, firm):
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="please stop texting me")
    assert await settle(deps) == ["review_opened"]
    decision = await decide_for_phone(pool, firm.id, PHONE)
    assert (decision.code, decision.notice.text) == ("review_opt_out", NOTICES["review_opt_out"].text)
    state = await flags(pool, firm.id, PHONE)
    reviewed = await pool.fetchval("SELECT id FROM messages WHERE body = 'please stop texting me'")
    assert (state["review_pending"], state["review_message_id"], state["opted_out"]) == (True, reviewed, False)
    assert await flag_events(pool, firm.id, PHONE) == [("review_opened", None)]
    assert await consent_history(pool, firm.id, PHONE) == []


async def test_an_ordinary_reply_with_stop_in_it_does_not_pause_sends(http, settings, deps, pool, firm):
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="We have got to STOP this bill")
    assert await settle(deps) == ["filed"]
    assert (await decide_for_phone(pool, firm.id, PHONE)).sendable
    assert await consent_history(pool, firm.id, PHONE) == []


async def test_a_stop_sounding_reply_from_an_opted_out_phone_opens_no_review(http, settings, deps, pool, firm):
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="STOP")
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="and don't text me again")
    assert await settle(deps) == ["keyword", "filed"]
    state = await flags(pool, firm.id, PHONE)
    assert (state["opted_out"], state["review_pending"]) == (True, False)
    assert await flag_events(pool, firm.id, PHONE) == []
