"""A worker killed with SIGKILL in the middle of 500 sends (and of 50 scheduled sends
coming due), then replaced: once the sweeper has run, every message is at Twilio exactly
once."""

import asyncio
import os
import signal
from datetime import datetime, timedelta, timezone

import pytest

from tests.send_pipeline.conftest import add_lead, open_conversation, post_send, set_sim, sim_view
from tests.support import stop_process, wait_for

pytestmark = pytest.mark.slow  # tens of seconds: `make test` starts it first

LEADS = 50
PER_LEAD = 10


async def test_a_worker_killed_mid_batch_leaves_every_message_sent_exactly_once(
        worker_pool, web, http, firm, pool, sim, callbacks_off):
    victim = worker_pool.start("send", WORKER_THREADS=8)
    replacement = sweeper = None
    try:
        conversations = []
        for n in range(LEADS):
            lead_id = await add_lead(pool, firm.id, f"+1212555{3000 + n:04d}")
            conversations.append(await open_conversation(http, firm, lead_id))
        gate = asyncio.Semaphore(20)

        async def send(conv, user, k):
            async with gate:
                status, body, _ = await post_send(http, firm.user(user), conv, f"Batch note {k} for {conv}")
                assert status == 202, body
                return body["id"]

        posting = asyncio.gather(*(send(conv, f"user-{i}", k) for i, conv in enumerate(conversations)
                                   for k in range(PER_LEAD)))

        async def sent_so_far():
            return len((await sim_view(sim))["messages"])

        await wait_for(lambda: _at_least(sent_so_far, 100), timeout=30, what="100 messages at the simulator")
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)
        ids = await posting
        assert len(set(ids)) == LEADS * PER_LEAD
        unfinished = await pool.fetchval("SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')")
        assert unfinished > 0, "the kill should land in the middle of the batch"

        replacement = worker_pool.start("send", WORKER_THREADS=8)
        sweeper = worker_pool.start_sweeper()
        await wait_for(lambda: pool.fetchval("SELECT bool_and(status = 'sent' AND twilio_sid IS NOT NULL) FROM messages"),
                       timeout=45, interval=0.25, what="every message sent")
    finally:
        for proc in (victim, replacement, sweeper):
            if proc is not None:
                stop_process(proc)

    at_twilio = (await sim_view(sim))["messages"]
    assert len(at_twilio) == LEADS * PER_LEAD
    assert len({(m["to"], m["body"]) for m in at_twilio}) == LEADS * PER_LEAD
    rows = await pool.fetch("SELECT twilio_sid FROM messages")
    assert {r["twilio_sid"] for r in rows} == {m["sid"] for m in at_twilio}
    assert {m["from"] for m in at_twilio} == {firm.number}


async def _at_least(count, n):
    return await count() >= n


SCHEDULED = 50


async def test_a_worker_killed_while_50_scheduled_sends_come_due_leaves_each_sent_exactly_once(
        worker_pool, web, http, firm, pool, sim, callbacks_off):
    """The sweeper releases them from PostgreSQL at their send_at; the worker sending them
    is SIGKILLed partway; a replacement and the sweeper finish the rest, none twice."""
    conversations = []
    for n in range(SCHEDULED):
        lead_id = await add_lead(pool, firm.id, f"+1212555{6000 + n:04d}")
        conversations.append(await open_conversation(http, firm, lead_id))
    send_at = (datetime.now(timezone.utc) + timedelta(seconds=20)).isoformat()
    for i, conv in enumerate(conversations):
        async with http.post(f"/v1/conversations/{conv}/messages", headers=firm.user(f"user-{i}"),
                             json={"body": f"Scheduled note for {conv}", "send_at": send_at}) as resp:
            assert resp.status == 202, await resp.text()
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE status = 'scheduled'") == SCHEDULED
    # The API takes send_at no sooner than 10 s ahead; what is tested is the release and the
    # kill, so the wait is skipped: all 50 come due together a moment from now.
    await pool.execute("UPDATE messages SET send_at = now() + interval '1 second' WHERE status = 'scheduled'")

    await set_sim(sim, slow_s=0.25)  # so the kill lands with sends in flight
    victim = worker_pool.start("send", WORKER_THREADS=4)
    sweeper = worker_pool.start_sweeper()
    replacement = None
    try:
        await wait_for(lambda: _at_least(lambda: _count(sim), 8), timeout=60, interval=0.05,
                       what="the first scheduled sends at the simulator")
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)
        assert len((await sim_view(sim))["messages"]) < SCHEDULED, "the kill should land mid-batch"
        replacement = worker_pool.start("send", WORKER_THREADS=4)
        await wait_for(lambda: pool.fetchval("SELECT bool_and(status = 'sent' AND twilio_sid IS NOT NULL) FROM messages"),
                       timeout=60, interval=0.25, what="every scheduled message sent")
    finally:
        await set_sim(sim, slow_s=0.0)
        for proc in (victim, replacement, sweeper):
            if proc is not None:
                stop_process(proc)

    at_twilio = (await sim_view(sim))["messages"]
    assert len(at_twilio) == SCHEDULED
    assert len({m["to"] for m in at_twilio}) == SCHEDULED
    rows = await pool.fetch("SELECT twilio_sid FROM messages")
    assert {r["twilio_sid"] for r in rows} == {m["sid"] for m in at_twilio}


async def _count(sim: str) -> int:
    return len((await sim_view(sim))["messages"])
