"""Redis, then PostgreSQL, stopped hard in the middle of a run and started again.

While a server is down: /readyz answers 503 naming it; a send is refused 503 (nothing stored, the portal says try
again) or accepted and completed later; a webhook is answered 503 (Twilio retries it) or
stored and applied. After it is back: the same web, worker and sweeper processes carry
on (none restarted), every accepted message reaches Twilio exactly once, every inbound
text is stored once and applied, the STOP sent during the outage holds. The simulator
records every webhook answer, so "none lost" is checked against Twilio's side.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

import pytest

from tests.faults.conftest import record
from tests.faults.sends import Posted, add_conversations, audit, make_firm, post_sends, wait_settled
from tests.faults.stack import connect, private_stack
from tests.faults.webhooks import answered_2xx, retry_unanswered, text_us

CONVERSATIONS = 60
SENDS = 600
OUTAGE_S = 5.0
STOP_PHONE = "+13135557000"


async def paced_sends(stack, firm, plan, every_s: float) -> Posted:
    """The portal's steady trickle: one send every `every_s`, each answered on its own."""
    results: list[Posted] = []

    async def one(conv: int, body: str) -> None:
        results.append(await post_sends(stack, firm, [(conv, body)], concurrency=1))

    tasks = []
    for conv, body in plan:
        tasks.append(asyncio.create_task(one(conv, body)))
        await asyncio.sleep(every_s)
    await asyncio.gather(*tasks)
    merged = Posted()
    for r in results:
        merged.accepted.update(r.accepted)
        merged.errors += r.errors
        for k, v in r.refused.items():
            merged.refused[k] = merged.refused.get(k, 0) + v
        for k, v in r.refusal_codes.items():
            merged.refusal_codes[k] = merged.refusal_codes.get(k, 0) + v
    return merged


async def readiness(stack) -> tuple[int, list[str]]:
    """/readyz: (status, what it names as down)."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{stack.web}/readyz", timeout=aiohttp.ClientTimeout(total=15)) as resp:
            body = await resp.json()
            return resp.status, body.get("down", [])


async def run_outage(fault_dir, server: str) -> None:
    async with private_stack(fault_dir) as (stack, pg, rd):
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            phones = [f"+1212555{6000 + i:04d}" for i in range(CONVERSATIONS - 5)]  # valid numbers: the simulator refuses others (21211)
            phones += [f"+1313555{900 + i:04d}" for i in range(5)]  # ambiguous: created, then 500
            convs = await add_conversations(conn, firm.id, phones + [STOP_PHONE])
            plan = [(convs[phones[i % len(phones)]], f"Outage note {i}") for i in range(SENDS)]
            web, worker, sweeper = stack.alive("web")[0], stack.start_worker(), stack.start_sweeper()

            sending = asyncio.create_task(paced_sends(stack, firm, plan, every_s=0.025))
            await asyncio.sleep(4)
            down_at = time.monotonic()
            if server == "redis":
                rd.kill()
            else:
                await conn.close()
                pg.crash()
            texts = []
            await asyncio.sleep(0.5)
            ready_during = await readiness(stack)
            texts.append(await text_us(stack, STOP_PHONE, firm.number, "STOP"))
            for i in range(4):
                texts.append(await text_us(stack, phones[i], firm.number, f"Thanks, see you there ({i})"))
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            if server == "redis":
                rd.start()
            else:
                pg.start()
                conn = await connect(stack)
            up_at = time.monotonic()
            ready_after = None
            while time.monotonic() - up_at < 30:
                ready_after = await readiness(stack)
                if ready_after[0] == 200:
                    break
                await asyncio.sleep(0.2)
            # The same processes serve again: a send is accepted without restarting anything.
            probe = await post_sends(stack, firm, [(convs[phones[0]], "After the outage")], retry_refused=True,
                                     deadline_s=60)
            recovered_s = time.monotonic() - up_at
            assert len(probe.accepted) == 1, (probe.refused, probe.refusal_codes)
            posted = await sending
            accepted = {**posted.accepted, **probe.accepted}

            await wait_settled(conn, timeout=120)
            retried = await retry_unanswered(stack)  # Twilio's retry of what got no 2xx
            async def inbox_done() -> bool:
                return await conn.fetchval("SELECT count(*) FROM twilio_inbox WHERE processed_at IS NULL") == 0
            deadline = time.monotonic() + 60
            while not await inbox_done():
                assert time.monotonic() < deadline, "inbox rows left unprocessed"
                await asyncio.sleep(0.5)
            await wait_settled(conn, timeout=60, statuses=("queued", "sending", "sent"), what="every message delivered")

            result = await audit(conn, await stack.witness(), ids=list(accepted))
            callbacks = (await stack.sim_get("/sim/callbacks"))["callbacks"]
            not_2xx = [c for c in callbacks if not answered_2xx(c)]
            inbound_stored = await conn.fetchval("SELECT count(*) FROM twilio_inbox WHERE kind = 'inbound'")
            received = await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'")
            stop_events = await conn.fetchval(
                "SELECT count(*) FROM consent_events WHERE phone_e164 = $1 AND kind = 'opt_out'", STOP_PHONE)
            record(f"{server}_outage", sends_posted=len(plan) + 1, accepted=len(accepted),
                   refused_503=posted.refused.get(503, 0), refusal_codes=posted.refusal_codes,
                   other_5xx=posted.errors, webhooks_not_2xx=len(not_2xx), webhooks_retried=retried["retried"],
                   inbound_answers=[t["answer_status"] for t in texts], recovered_seconds=round(recovered_s, 1),
                   readyz_during=ready_during, readyz_after=ready_after[0],
                   **result.figures())

            assert ready_during == (503, ["redis", "broker"] if server == "redis" else ["database"]), ready_during
            assert ready_after[0] == 200
            assert posted.errors == 0, posted.refused
            assert set(posted.refused) <= {503}, posted.refused
            assert all(s in (200, 503) for s in (t["answer_status"] for t in texts)), texts
            assert [p.poll() for p in (web, worker, sweeper)] == [None, None, None], "a process died"
            assert result.problems == [] and result.lost == 0 and result.duplicated == 0 and result.stuck == 0
            assert result.by_status == {"delivered": len(accepted)}
            assert retried["accepted"] == retried["retried"]
            assert inbound_stored == len(texts) and received == len(texts)  # keywords are in the thread too
            assert stop_events == 1
            assert await conn.fetchval("SELECT opted_out FROM phone_flags WHERE phone_e164 = $1", STOP_PHONE)
        finally:
            await conn.close()


@pytest.mark.faults
async def test_redis_restarted_mid_run_loses_nothing_and_doubles_nothing(fault_dir):
    await run_outage(fault_dir, "redis")


@pytest.mark.faults
async def test_postgresql_restarted_mid_run_loses_nothing_and_doubles_nothing(fault_dir):
    await run_outage(fault_dir, "postgres")
