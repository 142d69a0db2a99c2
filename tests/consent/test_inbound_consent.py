"""Inbound texts and consent: Twilio's Advanced Opt-Out (OptOutType), the HELP reply of a
firm without it, and a soft opt-out that pauses queued sends in the webhook's transaction."""

from __future__ import annotations

import subprocess

import pytest

from conversations.sendable import decide_for_phone
from send_pipeline import sending
from tests.consent.support import sim_inbound, sim_message_requests
from tests.support import leadsms_command, wait_for
from tests.webhooks.support import consent_history, open_thread, send_inbound, settle

PHONE = "+16465552345"  # the simulator's plain mobile row: sends are delivered


async def test_opt_out_type_stop_opts_out_whatever_the_body_says(http, settings, deps, pool, firm, sim):
    answer = await sim_inbound(sim, **{"from": PHONE, "to": firm.number, "body": "Arrêt", "opt_out_type": "STOP"})
    assert answer["answer_status"] == 200
    assert (await decide_for_phone(pool, firm.id, PHONE)).code == "opted_out"  # before any job ran
    answer = await sim_inbound(sim, **{"from": PHONE, "to": firm.number, "body": "Oui", "opt_out_type": "START"})
    assert answer["answer_status"] == 200
    assert (await decide_for_phone(pool, firm.id, PHONE)).sendable
    assert await consent_history(pool, firm.id, PHONE) == [("opt_out", "keyword:arrêt"), ("opt_in", "keyword:oui")]
    assert await settle(deps) == ["keyword", "keyword"]


async def test_a_keyword_that_advanced_opt_out_calls_help_is_no_opt_out(http, settings, deps, pool, firm, sim):
    # Twilio, not our keyword list, decides when OptOutType is present
    await sim_inbound(sim, **{"from": PHONE, "to": firm.number, "body": "STOP", "opt_out_type": "HELP"})
    assert await settle(deps) == ["keyword"]
    assert await consent_history(pool, firm.id, PHONE) == []
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'out'") == 0  # Twilio answered it


async def test_help_without_advanced_opt_out_gets_the_firms_help_text_once_a_day(http, settings, pool, firm, sim, worker):
    conversation_id = await open_thread(http, pool, firm, PHONE)
    answer = await sim_inbound(sim, **{"from": PHONE, "to": firm.number, "body": "help"})
    assert answer["answer_status"] == 200
    default = "Acme Seminars: reply to this number to reach us. Reply STOP to opt out."

    async def delivered():
        sent = [m for m in await sim_message_requests(sim, PHONE) if m.get("body") == default]
        return sent if sent and sent[0].get("status") == "delivered" else None

    await wait_for(delivered, timeout=20, what="the help reply to reach the simulator")
    async with http.get(f"/v1/conversations/{conversation_id}/messages", headers=firm.headers) as r:
        thread = (await r.json())["items"]
    assert [(m["direction"], m["body"], m["sent_by"]) for m in thread] == [
        ("in", "help", None), ("out", default, "help_reply")]
    assert thread[1]["status"] in ("sent", "delivered")

    again = await sim_inbound(sim, **{"from": PHONE, "to": firm.number, "body": "INFO"})
    await wait_for(lambda: pool.fetchval("SELECT outcome FROM twilio_inbox WHERE message_sid = $1",
                                         again["message_sid"]), timeout=10, what="the second HELP to be filed")
    assert await pool.fetchval("SELECT outcome FROM twilio_inbox WHERE message_sid = $1", again["message_sid"]) == "keyword"
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'out'") == 1


async def test_firm_set_help_text_changes_the_reply(http, settings, deps, pool, firm, sim):
    env = {**settings.to_env(), "LOG_FORMAT": "json"}
    proc = subprocess.run(leadsms_command("firm", "set", "--firm", str(firm.id), "--help-text",
                                          "Acme: call 555-0100 for help. Reply STOP to opt out."),
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="HELP")
    assert await settle(deps) == ["help_replied"]
    row = await pool.fetchrow("SELECT body, status, sent_by FROM messages WHERE direction = 'out'")
    assert (row["body"], row["sent_by"]) == ("Acme: call 555-0100 for help. Reply STOP to opt out.", "help_reply")
    assert row["status"] in ("queued", "sending", "sent", "delivered")  # the session's worker may have sent it


async def _queued_sends(pool, firm_id: int, phone: str, count: int) -> list[int]:
    """Sends accepted and waiting for a worker (no job enqueued: nothing takes them early)."""
    conversation_id = await pool.fetchval(
        "INSERT INTO conversations (firm_id, phone_e164) VALUES ($1, $2) RETURNING id", firm_id, phone)
    rows = await pool.fetch(
        """
        INSERT INTO messages (firm_id, conversation_id, direction, body, sent_by, status, segments)
        SELECT $1, $2, 'out', 'Reminder ' || n, 'user-1', 'queued', 1 FROM generate_series(1, $3) AS n
        RETURNING id
        """,
        firm_id, conversation_id, count,
    )
    return [r["id"] for r in rows]


@pytest.mark.parametrize(("body", "code"), [("please stop texting me", "review_opt_out"), ("STOP", "opted_out")])
async def test_a_soft_opt_out_stops_queued_sends_the_way_stop_does(http, settings, deps, pool, firm, sim, body, code):
    ids = await _queued_sends(pool, firm.id, PHONE, 5)
    assert (await send_inbound(http, settings, from_=PHONE, to=firm.number, body=body)).status == 200
    # the webhook has answered; its job has not run: every claim from now on is refused
    for message_id in ids:
        assert (await sending.send_message(deps, message_id)).result == "blocked"
    rows = await pool.fetch("SELECT status, blocked_reason FROM messages WHERE id = ANY($1::bigint[])", ids)
    assert {(r["status"], r["blocked_reason"]) for r in rows} == {("blocked", code)}
    # (a late help reply of an earlier test may reach the simulator; none of these may)
    assert [m for m in await sim_message_requests(sim, PHONE) if m.get("body", "").startswith("Reminder")] == []
    assert await settle(deps) == ["review_opened" if code == "review_opt_out" else "keyword"]
    if code == "review_opt_out":
        reviewed = await pool.fetchval("SELECT review_message_id FROM phone_flags WHERE phone_e164 = $1", PHONE)
        assert reviewed == await pool.fetchval("SELECT id FROM messages WHERE direction = 'in'")
