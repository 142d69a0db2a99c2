"""Staff decisions: reviewing a reply that may be an opt-out, and lifting an auto-block."""

import json
import subprocess

from conversations.sendable import decide_for_phone
from tests.support import leadsms_command
from tests.webhooks.support import (
    add_outbound,
    consent_history,
    flag_events,
    flags,
    open_thread,
    post_message,
    send_inbound,
    send_status,
    settle,
)
from webhooks.unblock import unblock

PHONE = "+16465551234"


async def _paused_conversation(http, settings, deps, pool, firm) -> int:
    conversation_id = await open_thread(http, pool, firm, PHONE)
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="Remove me from your list")
    assert await settle(deps) == ["review_opened"]
    status, refused = await post_message(http, firm, conversation_id, "Sorry to hear that!")
    assert (status, refused["code"]) == (409, "review_opt_out")
    return conversation_id


async def _review(http, firm, conversation_id, decision, user="staff-7"):
    async with http.post(f"/v1/conversations/{conversation_id}/review", json={"decision": decision},
                         headers=firm.user(user)) as r:
        return r.status, await r.json()


async def test_keep_resumes_sends_and_is_audited(http, settings, deps, pool, firm):
    conversation_id = await _paused_conversation(http, settings, deps, pool, firm)
    status, body = await _review(http, firm, conversation_id, "keep")
    assert status == 200
    assert body == {"conversation_id": conversation_id, "decision": "keep", "can_send": True, "notice": None}
    assert (await decide_for_phone(pool, firm.id, PHONE)).sendable
    assert await consent_history(pool, firm.id, PHONE) == []
    assert await flag_events(pool, firm.id, PHONE) == [("review_opened", None), ("review_keep", "staff-7")]
    reviewed = await pool.fetchval("SELECT message_id FROM phone_flag_events WHERE kind = 'review_keep'")
    assert reviewed == await pool.fetchval("SELECT id FROM messages WHERE direction = 'in'")


async def test_opt_out_records_a_consent_event_from_the_staff_member(http, settings, deps, pool, firm):
    conversation_id = await _paused_conversation(http, settings, deps, pool, firm)
    status, body = await _review(http, firm, conversation_id, "opt_out")
    assert status == 200
    assert (body["can_send"], body["notice"]["code"]) == (False, "opted_out")
    assert (await post_message(http, firm, conversation_id, "Bye!"))[1]["code"] == "opted_out"
    assert await consent_history(pool, firm.id, PHONE) == [("opt_out", "staff:staff-7")]
    assert (await flags(pool, firm.id, PHONE))["review_pending"] is False
    assert [k for k, _ in await flag_events(pool, firm.id, PHONE)] == ["review_opened", "review_opt_out"]
    # the lead can still opt back in themselves
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="START")
    assert (await decide_for_phone(pool, firm.id, PHONE)).sendable


async def test_a_review_needs_a_pending_reply_a_known_decision_and_a_user(http, settings, deps, pool, firm, make_firm):
    conversation_id = await _paused_conversation(http, settings, deps, pool, firm)
    assert (await _review(http, firm, conversation_id, "maybe"))[1]["code"] == "bad_decision"
    async with http.post(f"/v1/conversations/{conversation_id}/review", json={"decision": "keep"},
                         headers=firm.headers) as r:
        assert (r.status, (await r.json())["code"]) == (400, "missing_user")
    other = await make_firm()
    assert (await _review(http, other, conversation_id, "keep"))[0] == 404  # another firm's conversation
    assert (await _review(http, firm, conversation_id, "keep"))[0] == 200
    status, body = await _review(http, firm, conversation_id, "keep")
    assert (status, body["code"]) == (409, "no_review_pending")
    assert (await flags(pool, firm.id, PHONE))["review_pending"] is False


async def _block(http, settings, deps, pool, firm_id):
    for n in range(settings.block_after_filter_failures):
        message_id = await add_outbound(pool, firm_id, PHONE, sid=f"SMb{n}")
        await send_status(http, settings, message_id=message_id, sid=f"SMb{n}", status="undelivered", error_code=30007)
    await settle(deps)
    assert (await decide_for_phone(pool, firm_id, PHONE)).code == "blocked"


async def test_unblock_lifts_the_block_afresh_and_is_audited(http, settings, deps, pool, firm):
    await _block(http, settings, deps, pool, firm.id)
    async with pool.acquire() as conn:
        assert await unblock(conn, firm.id, PHONE, "ops-anna") is True
        assert await unblock(conn, firm.id, PHONE, "ops-anna") is False  # nothing to lift: no audit
    state = await flags(pool, firm.id, PHONE)
    assert (state["blocked"], state["blocked_reason"], state["consecutive_filter_failures"]) == (False, None, 0)
    assert (await decide_for_phone(pool, firm.id, PHONE)).sendable
    assert (await flag_events(pool, firm.id, PHONE))[-2:] == [("blocked", "auto"), ("unblocked", "ops-anna")]


async def test_leadsms_unblock_lifts_a_block_from_the_command_line(http, settings, deps, pool, firm):
    await _block(http, settings, deps, pool, firm.id)
    env = {**settings.to_env(), "LOG_LEVEL": "WARNING"}
    done = subprocess.run(leadsms_command("unblock", "--firm", str(firm.id), "--phone", "(646) 555-1234", "--by", "ops-bo"),
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"firm_id": firm.id, "phone": PHONE, "unblocked": True}
    assert (await flag_events(pool, firm.id, PHONE))[-1] == ("unblocked", "ops-bo")
    bad = subprocess.run(leadsms_command("unblock", "--firm", "999999", "--phone", PHONE), env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "no firm with id 999999" in bad.stderr
