"""Twilio having a bad day: 20% of creates answered 500, some created-then-500, some
answered only after the client's timeout, every create slow, bursts of 429, a failing
Messages list, and numbers Twilio refuses for good (21610, 21614, 21211).

Each kind is retried as it says: 429 (never received) retried after a backoff; 500 and
timeouts (ambiguous) retried only after the sweeper found no copy in Twilio's list;
permanent refusals never retried. The simulator's create attempts, keyed by the message
id in each StatusCallback, show how often each message was tried and how often created.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pytest

from tests.faults.conftest import record
from tests.faults.sends import add_conversations, audit, make_firm, post_sends, wait_settled
from tests.faults.stack import Witness, connect, private_stack

SENDS = 1000
PERMANENT = {"+13135550301": 21610, "+13135550302": 21610, "+13135550001": 21614, "+13135550002": 21614,
             "+13135550401": 21211, "+13135550402": 21211}
KNOBS = dict(fail_500_rate=0.2, created_500_rate=0.05, hang_rate=0.02, hang_s=12, slow_s=0.05,
             list_500_rate=0.1, fault_seed=3)


def message_id_of(url: str | None) -> int | None:
    return int(url.rsplit("?m=", 1)[1]) if url and "?m=" in url else None


@pytest.mark.faults
async def test_twilio_errors_are_retried_as_their_kind_says_and_nothing_is_sent_twice(fault_dir):
    async with private_stack(fault_dir) as (stack, pg, rd):
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            good = [f"+1212555{7000 + i:04d}" for i in range(94)]  # valid numbers: the simulator refuses others (21211)
            convs = await add_conversations(conn, firm.id, good + list(PERMANENT))
            plan = [(convs[good[i % len(good)]], f"Trouble note {i}") for i in range(SENDS - 60)]
            plan += [(convs[p], f"To a refusing number {k}") for p in PERMANENT for k in range(10)]
            random.Random(9).shuffle(plan)
            await stack.sim_config(**KNOBS)
            for _ in range(2):
                stack.start_worker(WORKER_THREADS=8)
            stack.start_sweeper()
            started = time.monotonic()

            async def bursts() -> int:
                n = 0
                for _ in range(3):
                    await asyncio.sleep(3)
                    await stack.sim_config(burst_429=40)
                    n += 40
                return n

            burst_task = asyncio.create_task(bursts())
            posted = await post_sends(stack, firm, plan, concurrency=16)
            await burst_task
            refusing = {convs[p] for p in PERMANENT}
            # Once a refusal is recorded (opted out, landline, invalid), later sends to that
            # phone are refused at the door (409): Twilio is never asked again.
            assert set(posted.refusal_codes) <= {"opted_out", "landline", "invalid_phone"}, posted.refusal_codes
            assert sum(1 for c, _ in posted.accepted.values() if c not in refusing) == sum(
                1 for c, _ in plan if c not in refusing)
            await wait_settled(conn, timeout=300)
            elapsed = time.monotonic() - started
            await stack.sim_config(**{k: 0 for k in KNOBS if k != "hang_s"})

            sim = await stack.sim_get("/sim/messages")
            witness = Witness(sim["messages"])
            counters = await stack.sim_get("/sim/counters")
            attempts_per_id: Counter[int] = Counter()
            permanent_attempts: Counter[int] = Counter()
            kinds: Counter[str] = Counter()
            for a in sim["attempts"]:
                mid = message_id_of(a.get("status_callback"))
                attempts_per_id[mid] += 1
                kinds[a.get("fault") or a.get("outcome")] += 1
                if a.get("error_code") in (21610, 21614, 21211):
                    permanent_attempts[mid] += 1

            permanent_ids = [i for i, (conv, _) in posted.accepted.items() if conv in refusing]
            other_ids = [i for i in posted.accepted if i not in set(permanent_ids)]
            result = await audit(conn, witness, ids=other_ids)
            refused = await conn.fetch("SELECT id, status, error_code FROM messages WHERE id = ANY($1::bigint[])",
                                       permanent_ids)
            retried = sum(1 for i in other_ids if attempts_per_id[i] > 1)
            record("twilio_trouble", sends=len(plan), seconds=round(elapsed, 1), create_attempts=sum(attempts_per_id.values()),
                   attempts_by_kind=dict(kinds), messages_retried=retried,
                   list_500s=counters.get("fault_list_500", 0),
                   permanent_refusals=len(permanent_attempts), permanent_retried=sum(1 for n in permanent_attempts.values() if n > 1),
                   refused_final=dict(Counter(r["status"] for r in refused)),
                   refused_at_the_door=sum(posted.refused.values()), **result.figures())

            assert result.problems == [] and result.lost == 0 and result.duplicated == 0 and result.stuck == 0
            assert result.sent == len(other_ids)
            assert kinds["500"] > 0 and kinds["429"] > 0 and kinds["created_500"] > 0 and kinds["hang"] > 0
            # Permanent refusals: tried once, never again; nothing created at Twilio.
            assert all(n == 1 for n in permanent_attempts.values()), permanent_attempts
            assert all(witness.per_id.get(r["id"], 0) == 0 for r in refused)
            assert {r["status"] for r in refused} <= {"failed", "blocked"}
            assert all(r["error_code"] in (21610, 21614, 21211) for r in refused if r["status"] == "failed")
            opted_out = await conn.fetchval("SELECT count(*) FROM phone_flags WHERE opted_out")
            assert opted_out == 2
        finally:
            await conn.close()
