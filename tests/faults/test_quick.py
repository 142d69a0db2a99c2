"""The short subset of the fault scenarios that runs in `make test` (unmarked, ~30 s):
one worker SIGKILLed mid-batch, among the simulator's flaky and ambiguous numbers, then
replaced; every message ends at Twilio exactly once. The full runs are `make faults`."""

from __future__ import annotations

import pytest

from tests.faults.sends import add_conversations, audit, make_firm, post_sends, wait_settled
from tests.faults.stack import connect, private_stack
from tests.faults.test_worker_kills import plan_phones
from tests.support import wait_for

SENDS = 150


@pytest.mark.timeout(180)
async def test_a_worker_killed_mid_batch_leaves_every_message_at_twilio_exactly_once(tmp_path):
    async with private_stack(tmp_path) as (stack, pg, rd):
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            phones = plan_phones(SENDS // 5)
            convs = await add_conversations(conn, firm.id, phones)
            plan = [(conv, f"Quick note {k} for {conv}") for k in range(5) for conv in convs.values()]
            await stack.sim_config(slow_s=0.05)
            victim = stack.start_worker(WORKER_THREADS=8)
            stack.start_sweeper()
            posted = await post_sends(stack, firm, plan)
            assert len(posted.accepted) == SENDS
            async def a_quarter_taken() -> bool:
                return await conn.fetchval("SELECT count(*) FROM messages WHERE status <> 'queued'") >= SENDS // 4

            await wait_for(a_quarter_taken, timeout=60, what="a quarter of the sends taken by the worker")
            stack.kill(victim)
            assert await conn.fetchval("SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')") > 0
            stack.start_worker(WORKER_THREADS=8)
            await wait_settled(conn, timeout=90)
            result = await audit(conn, await stack.witness(), ids=list(posted.accepted))
            assert result.problems == [] and result.lost == 0 and result.duplicated == 0 and result.stuck == 0
            assert result.sent == SENDS
        finally:
            await conn.close()
