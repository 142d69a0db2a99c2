"""200 scheduled sends come due together while the worker sending them is SIGKILLed (and
the sweeper releasing them too): each ends at Twilio exactly once.

The wait lives in PostgreSQL (`send_at`); the sweeper releases due rows under SKIP LOCKED
and the claim makes any duplicate job harmless, so a kill at any point loses nothing and
sends nothing twice. The simulator is the witness.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from tests.faults.conftest import record
from tests.faults.sends import add_conversations, audit, make_firm, wait_settled
from tests.faults.stack import connect, private_stack

SCHEDULED = int(os.environ.get("FAULTS_SCHEDULED", "200"))


@pytest.mark.faults
async def test_workers_killed_while_200_scheduled_sends_come_due_leave_each_sent_exactly_once(fault_dir):
    async with private_stack(fault_dir) as (stack, pg, rd):
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            convs = await add_conversations(conn, firm.id, [f"+1212{555 + i // 1000:03d}{5000 + i % 1000:04d}"
                                                            for i in range(SCHEDULED)])
            send_at = (datetime.now(timezone.utc) + timedelta(seconds=40)).isoformat()
            gate = asyncio.Semaphore(16)

            async def schedule(http: aiohttp.ClientSession, conv: int) -> None:
                async with gate, http.post(f"/v1/conversations/{conv}/messages", headers=firm.headers(f"u-{conv}"),
                                           json={"body": f"Scheduled reminder for {conv}", "send_at": send_at}) as resp:
                    assert resp.status == 202, await resp.text()

            async with aiohttp.ClientSession(base_url=stack.web) as http:
                await asyncio.gather(*(schedule(http, conv) for conv in convs.values()))
            await stack.sim_config(slow_s=0.1)
            victim = stack.start_worker(WORKER_THREADS=8)
            stack.start_sweeper()

            async def at_twilio() -> int:
                return len((await stack.witness()).messages)

            deadline = asyncio.get_running_loop().time() + 120
            while await at_twilio() < SCHEDULED // 5:
                assert asyncio.get_running_loop().time() < deadline, "the scheduled sends never came due"
                await asyncio.sleep(0.05)
            stack.kill(victim)
            for sweeper in stack.alive("sweeper"):
                stack.kill(sweeper)
            killed_at = await at_twilio()
            stack.start_worker(WORKER_THREADS=8)
            stack.start_sweeper()
            settle_s = await wait_settled(conn, timeout=180, statuses=("scheduled", "queued", "sending"))
            await asyncio.sleep(1)
            result = await audit(conn, await stack.witness())
            record("scheduled_kills", sends=SCHEDULED, at_twilio_when_killed=killed_at,
                   settle_seconds=round(settle_s, 1), **result.figures())
            assert killed_at < SCHEDULED, "the kill should land mid-batch"
            assert result.problems == []
            assert result.stuck == 0 and result.lost == 0 and result.duplicated == 0
            assert result.sent == SCHEDULED, result.by_status
        finally:
            await conn.close()
