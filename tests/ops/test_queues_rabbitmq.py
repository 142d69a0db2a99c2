"""`leadsms queues dead|retry|purge-dead` on RabbitMQ: dramatiq dead-letters into `<queue>.XQ`."""

from __future__ import annotations

import asyncio
import json
import uuid

import dramatiq
import pytest

from ops.queues import queue_stats
from shared import broker as brokers
from tests.ops.conftest import cli_env, run_queues
from tests.support import wait_for

QUEUE = "ops_rabbit_test"
FIXED: set[str] = set()
DONE: set[str] = set()


def flaky(token: str) -> None:
    if token not in FIXED:
        raise RuntimeError(f"job {token} cannot run yet")
    DONE.add(token)


@pytest.fixture
def rabbit(rabbitmq):
    if rabbitmq.url is None:
        pytest.skip(f"RabbitMQ tests skipped: {rabbitmq.skip_reason}")
    rb = brokers.build_broker(rabbitmq.url)
    job = dramatiq.actor(flaky, broker=rb, queue_name=QUEUE, max_retries=0, actor_name="ops_rabbit_flaky")
    worker = dramatiq.Worker(rb, queues={QUEUE}, worker_timeout=100, worker_threads=1)
    worker.start()
    try:
        yield rabbitmq.url, rb, job
    finally:
        worker.stop(timeout=5000)
        rb.close()


async def test_dead_letters_on_rabbitmq_are_listed_retried_and_purged(rabbit, settings):
    url, rb, job = rabbit
    tokens = [uuid.uuid4().hex for _ in range(3)]
    for token in tokens:
        job.send(token)

    async def dead() -> int:
        return (await asyncio.to_thread(queue_stats, rb, [QUEUE]))[0].dead

    await wait_for(lambda: _equals(dead, 3), timeout=20, what="3 dead letters on the XQ queue")
    env = cli_env(settings, BROKER_URL=url)

    listed = await run_queues(env, "dead", QUEUE, "--json")
    assert listed.code == 0, listed.err
    letters = json.loads(listed.out)["dead"]
    assert sorted(d["args"][0] for d in letters) == sorted(tokens)
    assert {d["actor"] for d in letters} == {"ops_rabbit_flaky"} and all(d["dead_at"] for d in letters)
    assert await dead() == 3, "listing takes nothing off the dead-letter queue"

    first = next(d for d in letters if d["args"] == [tokens[0]])
    FIXED.add(tokens[0])
    one = await run_queues(env, "retry", QUEUE, first["id"])
    assert one.code == 0, one.err
    assert one.out.strip() == f"retried 1 dead letter(s) on {QUEUE}"
    await wait_for(lambda: _true(tokens[0] in DONE), timeout=20, what="the retried job to run")
    assert await dead() == 2

    missing = await run_queues(env, "retry", QUEUE, "no-such-id")
    assert missing.code == 1 and "not found: no-such-id" in missing.out
    purged = await run_queues(env, "purge-dead", QUEUE, "--yes")
    assert purged.code == 0, purged.err
    assert purged.out.strip() == f"deleted 2 dead letter(s) from {QUEUE}"
    assert await dead() == 0


async def _equals(aw, n):
    return await aw() == n


async def _true(value):
    return value
