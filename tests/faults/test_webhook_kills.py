"""A `deliveries` worker SIGKILLed during a run of outbound webhook deliveries: every
event still reaches the receiver at least once, verified with `standardwebhooks`.

200 events in `make test` (one kill); 1,000 with several kills in `make faults`. The
events are committed straight into the event log (as every change writes them) with the
wake-up a writer publishes; the receiver answers in a few milliseconds, so kills land
between a claim and its answer. A killed worker's lanes and claims come back after their
lease (twice WEBHOOK_TIMEOUT_S, 1 s here) through the sweeper.
"""

from __future__ import annotations

import os

import aiohttp
import pytest

import events
from shared.deps import redis_client
from tests.faults.conftest import record
from tests.faults.sends import make_firm
from tests.faults.stack import connect, private_stack
from tests.outbound.support import Receiver, receiving
from tests.support import wait_for

FULL = int(os.environ.get("FAULTS_WEBHOOK_EVENTS", "1000"))


async def _run(tmp_path, n: int, kills: int) -> None:
    overrides = dict(webhooks_allow_private=True, webhook_timeout_s=1, webhook_retry_schedule_s=(1,) * 10)
    async with private_stack(tmp_path, **overrides) as (stack, pg, rd):
        firm = await make_firm(stack)
        async with receiving(Receiver(delay_s=0.005)) as receiver:
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{stack.web}/v1/webhook-endpoints", json={"url": receiver.url, "events": ["*"]},
                                     headers=firm.headers()) as r:
                    assert r.status == 201, await r.text()
                    receiver.secrets = [(await r.json())["secret"]]
            victim = stack.start_worker("deliveries")
            stack.start_sweeper()
            conn = await connect(stack)
            try:
                wake = redis_client(stack.settings.redis_url)
                for start in range(0, n, 10):
                    async with conn.transaction():
                        for i in range(start, min(n, start + 10)):
                            await events.record(conn, firm.id, "consent.changed",
                                                {"phone": f"+1646555{i:04d}", "kind": "opt_out", "source": "fault",
                                                 "at": None})
                    await events.wake(wake, [firm.id])
                await wake.aclose()

                def cursors() -> set[str]:
                    return {g.payload["cursor"] for g in receiver.got if g.payload is not None}

                def at_least(goal: int):
                    async def reached() -> bool:
                        return len(cursors()) >= goal
                    return reached

                for k in range(kills):
                    goal = n * (k + 1) // (kills + 2)
                    await wait_for(at_least(goal), timeout=90,
                                   what=f"{goal} deliveries before kill {k + 1}")
                    stack.kill(victim)
                    victim = stack.start_worker("deliveries")
                await wait_for(at_least(n), timeout=120,
                               what=f"all {n} events delivered")
                unverified = [g for g in receiver.got if g.payload is None]
                assert unverified == []
                assert cursors() == {str(i) for i in range(1, n + 1)}
                duplicates = len(receiver.got) - n
                record(f"webhook_kills_{n}", events=n, kills=kills, requests=len(receiver.got), duplicates=duplicates,
                       lost=0)
            finally:
                await conn.close()


@pytest.mark.timeout(180)
async def test_a_deliveries_worker_killed_during_200_deliveries_leaves_every_event_delivered(tmp_path):
    await _run(tmp_path, 200, kills=1)


@pytest.mark.faults
@pytest.mark.timeout(600)
async def test_deliveries_workers_killed_again_and_again_during_1000_deliveries_lose_no_event(tmp_path):
    await _run(tmp_path, FULL, kills=4)
