"""A worker killed with SIGKILL in the middle of 500 sends, then replaced: once the
sweeper has run, every message is at Twilio exactly once."""

import asyncio
import os
import signal

from tests.send_pipeline.conftest import add_lead, open_conversation, post_send, sim_view
from tests.support import stop_process, wait_for

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
