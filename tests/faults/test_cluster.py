"""Two `leadsms web` and two `leadsms worker` processes on one database and one Redis
broker, every port chosen free (METRICS_PORT included), as a small production cluster.

- 25 simultaneous sends by one user, spread over both webs: exactly SEND_RATE_LIMIT (10)
  accepted, since both webs share the limit in Redis.
- A worker SIGKILLed during 200 sends (500 in `make faults`): every message reaches the
  simulator exactly once. The killed worker's unacknowledged jobs come back through the
  sweeper (STALE_AFTER_S=2), well before Redis's 60 s heartbeat would release them.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.faults.conftest import record
from tests.faults.sends import add_conversations, audit, make_firm, post_sends, wait_settled
from tests.faults.stack import connect, private_stack
from tests.faults.test_worker_kills import plan_phones
from tests.support import wait_for

pytestmark = pytest.mark.slow  # tens of seconds: `make test` starts it first

REDIS_HEARTBEAT_S = 60  # dramatiq's Redis broker releases a dead worker's jobs after this


async def _burst_from_one_user(stack, firm, conv: int, webs: list[str]) -> dict[int, int]:
    async def one(i: int) -> int:
        async with aiohttp.ClientSession(base_url=webs[i % len(webs)]) as http:
            async with http.post(f"/v1/conversations/{conv}/messages", json={"body": f"Burst {i}"},
                                 headers=firm.headers("burst-user")) as resp:
                return resp.status

    statuses = await asyncio.gather(*(one(i) for i in range(25)))
    return {s: statuses.count(s) for s in set(statuses)}


async def run_cluster(tmp_path, sends: int) -> dict:
    async with private_stack(tmp_path, send_rate_limit=10) as (stack, pg, rd):
        other_web = await stack.start_another_web()
        webs = [stack.web, other_web]
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            phones = plan_phones(sends // 5 + 1)
            convs = list((await add_conversations(conn, firm.id, phones)).values())
            burst_conv, convs = convs[0], convs[1:]
            victim = stack.start_worker(WORKER_THREADS=8)
            stack.start_worker(WORKER_THREADS=8)
            stack.start_sweeper()

            burst = await _burst_from_one_user(stack, firm, burst_conv, webs)
            assert burst == {202: 10, 429: 15}, burst

            await stack.sim_config(slow_s=0.05)
            plan = [(conv, f"Cluster note {k} for {conv}") for k in range(5) for conv in convs]
            started = time.monotonic()
            halves = await asyncio.gather(post_sends(stack, firm, plan[0::2], base_url=webs[0]),
                                          post_sends(stack, firm, plan[1::2], base_url=webs[1]))
            accepted = {**halves[0].accepted, **halves[1].accepted}
            assert len(accepted) == sends, [h.refusal_codes for h in halves]

            async def a_quarter_taken() -> bool:
                return await conn.fetchval(
                    "SELECT count(*) FROM messages WHERE status <> 'queued' AND id = ANY($1::bigint[])",
                    list(accepted)) >= sends // 4

            await wait_for(a_quarter_taken, timeout=60, what="a quarter of the sends taken by the workers")
            stack.kill(victim)
            killed_at = time.monotonic()
            in_flight = await conn.fetchval("SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')")
            settle_s = await wait_settled(conn, timeout=REDIS_HEARTBEAT_S - 15)
            await asyncio.sleep(0.5)  # a callback in flight is not a send; the witness is complete
            result = await audit(conn, await stack.witness(), ids=list(accepted))
            figures = {"sends": sends, "in_flight_at_kill": in_flight, "burst": burst,
                       "seconds_after_kill": round(time.monotonic() - killed_at, 1),
                       "seconds": round(time.monotonic() - started, 1), "settle_seconds": round(settle_s, 1),
                       **result.figures()}
            assert in_flight > 0, "the kill should land while work is in flight"
            assert result.problems == [] and result.lost == 0 and result.duplicated == 0 and result.stuck == 0
            assert result.sent == sends, result.by_status
            return figures
        finally:
            await conn.close()


@pytest.mark.timeout(180)
async def test_two_webs_two_workers_share_the_rate_limit_and_survive_a_worker_kill(tmp_path):
    figures = await run_cluster(tmp_path, 200)
    print(f"\ncluster: {figures}")


@pytest.mark.faults
@pytest.mark.timeout(600)
async def test_the_cluster_survives_a_worker_kill_during_500_sends(fault_dir):
    record("cluster_kill", **await run_cluster(fault_dir, 500))
