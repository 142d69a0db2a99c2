"""Workers (and the sweeper) SIGKILLed again and again during a 5,000-send run: every message ends at
Twilio exactly once (or in a documented final state), none stuck, none duplicated.

The phones include the simulator's flaky numbers (05xx: 500 twice, nothing created),
its rate-limited ones (06xx: 429 once) and its ambiguous ones (09xx: created, then
answered 500), so kills land between a claim and its Twilio call, between the call and
the sid being stored, and in the middle of reconciling. The simulator is the witness.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from tests.faults.conftest import record
from tests.faults.logscan import basic_credentials, scan
from tests.faults.sends import add_conversations, audit, make_firm, post_sends, wait_settled
from tests.faults.stack import SID, connect, private_stack

SENDS = int(os.environ.get("FAULTS_SENDS", "5000"))
PER_PHONE = 10
MAX_KILLS = int(os.environ.get("FAULTS_KILLS", "10"))


def plan_phones(n: int) -> list[str]:
    chosen = []
    for i in range(n):
        kind = i % 8
        block = {0: 500, 1: 600, 2: 900}.get(kind)
        if block is None:
            # exchanges 200-999: numbers Twilio accepts (it answers 21211 for an exchange 0xx/1xx)
            chosen.append(f"+1212{200 + i % 800:03d}{5000 + i % 5000:04d}")  # last four 5000+: default
        else:
            chosen.append(f"+1313{200 + i % 800:03d}{block + i % 100:04d}")
    return chosen


async def run_kills(stack, stop: asyncio.Event, every_s: float, min_age_s: float, max_kills: int,
                    sweeper_kills: list[int]) -> int:
    """Every `every_s`, SIGKILL one worker that has been up at least `min_age_s` (so it is
    busy sending, not still booting) and start a replacement. Every third time, the
    sweeper is SIGKILLed too (maybe mid-pass, holding its advisory lock) and replaced."""
    born = {p: time.monotonic() for p in stack.alive("worker")}
    kills = 0
    rng = random.Random(11)
    while not stop.is_set() and kills < max_kills:
        try:
            await asyncio.wait_for(stop.wait(), every_s)
            break
        except asyncio.TimeoutError:
            pass
        now = time.monotonic()
        victims = [p for p in stack.alive("worker") if now - born.get(p, now) >= min_age_s]
        if victims:
            stack.kill(rng.choice(victims))
            kills += 1
            born[stack.start_worker(WORKER_THREADS=8)] = time.monotonic()
            if kills % 3 == 0:
                for sweeper in stack.alive("sweeper"):
                    stack.kill(sweeper)
                    sweeper_kills.append(1)
                stack.start_sweeper()
    return kills


@pytest.mark.faults
async def test_workers_killed_repeatedly_during_5000_sends_leave_each_message_at_twilio_exactly_once(fault_dir):
    async with private_stack(fault_dir) as (stack, pg, rd):
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            phone_list = plan_phones(SENDS // PER_PHONE)
            assert len(set(phone_list)) == len(phone_list)
            assert all(p[-4:] >= "5000" or p[-4:-2] in ("05", "06", "09") for p in phone_list)
            convs = await add_conversations(conn, firm.id, phone_list)
            plan = [(conv, f"Reminder {k} for conversation {conv}") for k in range(PER_PHONE) for conv in convs.values()]
            random.Random(5).shuffle(plan)

            for _ in range(2):
                stack.start_worker(WORKER_THREADS=8)
            stack.start_sweeper()
            stop = asyncio.Event()
            started = time.monotonic()
            sweeper_kills: list[int] = []
            killer = asyncio.create_task(run_kills(stack, stop, every_s=4, min_age_s=6, max_kills=MAX_KILLS,
                                                   sweeper_kills=sweeper_kills))
            posted = await post_sends(stack, firm, plan)
            assert len(posted.accepted) == len(plan), (posted.refused, posted.refusal_codes)
            # Keep killing until most of the run is through, then let the survivors finish.
            while (not killer.done() and await conn.fetchval(
                    "SELECT count(*) FROM messages WHERE status IN ('queued','sending')") > SENDS // 20):
                await asyncio.sleep(0.5)
            stop.set()
            kills = await killer
            settle_s = await wait_settled(conn, timeout=300)
            elapsed = time.monotonic() - started
            await asyncio.sleep(1)  # late callbacks in flight are not sends; the witness is complete
            result = await audit(conn, await stack.witness(), ids=list(posted.accepted))
            logs = stack.logs()
            ambiguous = logs.count("\"send_ambiguous\"")
            adopted = logs.count("\"send_reconciled_adopted\"")
            leaks = scan(logs, secrets={"auth token": stack.token, "api key": firm.key,
                                        "basic credentials": basic_credentials(SID, stack.token)},
                         bodies=[body for _, body in plan[:100]])
            record("worker_kills", sends=len(plan), worker_kills=kills, sweeper_kills=len(sweeper_kills), ambiguous_answers=ambiguous, adopted_by_reconcile=adopted,
                   secrets_in_logs=len(leaks),
                   seconds=round(elapsed, 1), settle_seconds=round(settle_s, 1), **result.figures())
            assert result.problems == []
            assert leaks == [], leaks[:3]
            assert result.stuck == 0 and result.lost == 0 and result.duplicated == 0
            assert result.sent == len(plan), result.by_status
            assert kills >= 3, "the run should have been long enough to kill workers several times"
        finally:
            await conn.close()
