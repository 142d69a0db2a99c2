"""A STOP arrives while 100 sends to that phone are queued: none is claimed after our
webhook answered the STOP.

The consent change is written in the STOP's inbox transaction, before Twilio gets its
200, and every claim re-checks consent in its UPDATE. So: each message claimed before
the answer may go out; every other one ends `blocked` (opted_out) without a Twilio call.
The answer time is the simulator's record of it (taken just after the answer arrived,
so an upper bound: the check errs towards passing only by those few milliseconds).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.faults.conftest import record
from tests.faults.sends import add_conversations, make_firm, post_sends, wait_settled
from tests.faults.stack import Witness, connect, private_stack
from tests.faults.webhooks import text_us

PHONE = "+13135558100"
SENDS = 100


async def one_round(stack, conn, firm, conv: int, round_no: int, stop_after: int) -> dict:
    plan = [(conv, f"Round {round_no} reminder {k}") for k in range(SENDS)]
    posted = await post_sends(stack, firm, plan, concurrency=20)
    assert len(posted.accepted) == SENDS
    ids = list(posted.accepted)
    while await conn.fetchval("SELECT count(*) FROM messages WHERE id = ANY($1::bigint[]) AND status <> 'queued'",
                              ids) < stop_after:
        await asyncio.sleep(0.02)
    answer = await text_us(stack, PHONE, firm.number, "STOP")
    assert answer["answer_status"] == 200
    await wait_settled(conn, timeout=120)
    stop_record = [c for c in (await stack.sim_get("/sim/callbacks", kind="inbound"))["callbacks"]
                   if c["message_sid"] == answer["message_sid"]][0]
    answered_at = datetime.fromisoformat(stop_record["at"])
    rows = await conn.fetch("SELECT id, status, claimed_at, blocked_reason FROM messages WHERE id = ANY($1::bigint[])", ids)
    witness = Witness((await stack.sim_get("/sim/messages", to=PHONE))["messages"])
    late = [r["id"] for r in rows if r["claimed_at"] is not None and r["claimed_at"] > answered_at
            and r["status"] != "blocked"]
    sent = [r for r in rows if r["status"] in ("sent", "delivered")]
    blocked = [r for r in rows if r["status"] == "blocked"]
    at_twilio_after_block = [r["id"] for r in blocked if witness.per_id.get(r["id"])]
    consent_at = await conn.fetchval("SELECT max(at) FROM consent_events WHERE phone_e164 = $1 AND kind = 'opt_out'", PHONE)
    last_claim = max((r["claimed_at"] for r in sent), default=None)
    return {"sent_before_stop": len(sent), "blocked_after_stop": len(blocked),
            "claimed_after_answer": len(late), "blocked_yet_at_twilio": len(at_twilio_after_block),
            "other_statuses": sorted({r["status"] for r in rows} - {"sent", "delivered", "blocked"}),
            "blocked_reasons": sorted({r["blocked_reason"] for r in blocked}),
            "last_claim_before_answer_ms": round((answered_at - last_claim).total_seconds() * 1000, 1) if last_claim else None,
            "consent_before_answer_ms": round((answered_at - consent_at).total_seconds() * 1000, 1)}


@pytest.mark.faults
async def test_no_send_is_claimed_after_the_stop_was_answered(fault_dir):
    async with private_stack(fault_dir) as (stack, pg, rd):
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            conv = (await add_conversations(conn, firm.id, [PHONE]))[PHONE]
            await stack.sim_config(slow_s=0.25)  # ~30 sends/s: the STOP lands mid-queue
            for _ in range(2):
                stack.start_worker("send", "inbound", "status", WORKER_THREADS=4)
            stack.start_sweeper()
            rounds = []
            for n, stop_after in enumerate((5, 30, 60)):
                if n:  # the lead texts START between rounds
                    assert (await text_us(stack, PHONE, firm.number, "START"))["answer_status"] == 200
                rounds.append(await one_round(stack, conn, firm, conv, n, stop_after))
            record("stop_race", rounds=len(rounds), sends=SENDS * len(rounds),
                   claimed_after_answer=sum(r["claimed_after_answer"] for r in rounds),
                   sent_before_stop=[r["sent_before_stop"] for r in rounds],
                   blocked_after_stop=[r["blocked_after_stop"] for r in rounds],
                   last_claim_before_answer_ms=[r["last_claim_before_answer_ms"] for r in rounds],
                   consent_before_answer_ms=[r["consent_before_answer_ms"] for r in rounds])
            for r in rounds:
                assert r["claimed_after_answer"] == 0, r
                assert r["blocked_yet_at_twilio"] == 0, r
                assert r["other_statuses"] == [], r
                assert r["blocked_reasons"] == ["opted_out"], r
                assert r["sent_before_stop"] >= 1 and r["blocked_after_stop"] >= 1, r
        finally:
            await conn.close()
