"""`leadsms queues`: the queue table, dead letters with their error, retry, purge."""

from __future__ import annotations

import json
import uuid

from ops.actors import ping_worker
from tests.ops import jobs
from tests.ops.conftest import cli_env, dead_count, run_queues, wait_dead
from tests.support import wait_for


async def test_the_table_lists_every_queue_with_depth_delayed_and_dead(settings, broker, deps):
    ping_worker.send_with_options(args=(uuid.uuid4().hex,), delay=600_000)
    result = await run_queues(cli_env(settings))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["QUEUE", "DEPTH", "IN_FLIGHT", "DELAYED", "DEAD"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert list(rows) == ["intake", "lookup", "send", "status", "inbound", "ops", "deliveries"]
    assert rows["ops"][2] == "1"  # the delayed ping

    as_json = await run_queues(cli_env(settings), "list", "--json")
    ops = next(q for q in json.loads(as_json.out)["queues"] if q["queue"] == "ops")
    assert ops["delayed"] == 1 and ops["dead"] == 0


async def test_dead_lists_actor_arguments_and_last_error(settings, broker, deps, job_worker):
    token = uuid.uuid4().hex
    jobs.ops_flaky_job.send(token)
    await wait_dead(broker, jobs.TEST_QUEUE, 1)

    result = await run_queues(cli_env(settings), "dead", jobs.TEST_QUEUE, "--json")
    assert result.code == 0, result.err
    [dead] = json.loads(result.out)["dead"]
    assert dead["actor"] == "ops_flaky_job"
    assert dead["args"] == [token]
    assert dead["error"] == f"RuntimeError: job {token} cannot run yet"
    assert "Traceback" in dead["traceback"] and dead["dead_at"]

    table = await run_queues(cli_env(settings), "dead", jobs.TEST_QUEUE)
    assert "ops_flaky_job" in table.out and f"RuntimeError: job {token} cannot run yet" in table.out


async def test_retry_brings_a_dead_lettered_message_back_and_it_is_processed(settings, broker, deps, job_worker):
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    jobs.ops_flaky_job.send(first)
    jobs.ops_flaky_job.send(second)
    await wait_dead(broker, jobs.TEST_QUEUE, 2)
    env = cli_env(settings)
    listed = json.loads((await run_queues(env, "dead", jobs.TEST_QUEUE, "--json")).out)["dead"]
    first_id = next(d["id"] for d in listed if d["args"] == [first])

    # whatever made them fail is fixed; retry one by its id, then the rest
    await deps.redis.set(jobs.fixed_key(first), "1")
    await deps.redis.set(jobs.fixed_key(second), "1")
    one = await run_queues(env, "retry", jobs.TEST_QUEUE, first_id)
    assert one.code == 0, one.err
    assert one.out.strip() == f"retried 1 dead letter(s) on {jobs.TEST_QUEUE}"
    await wait_for(lambda: deps.redis.get(jobs.done_key(first)), timeout=15, what="the retried job to run")
    assert await dead_count(broker, jobs.TEST_QUEUE) == 1
    assert not await deps.redis.get(jobs.done_key(second))

    unknown = await run_queues(env, "retry", jobs.TEST_QUEUE, "no-such-id")
    assert unknown.code == 1 and "not found: no-such-id" in unknown.out

    rest = await run_queues(env, "retry", jobs.TEST_QUEUE, "--all")
    assert rest.code == 0 and "retried 1" in rest.out
    await wait_for(lambda: deps.redis.get(jobs.done_key(second)), timeout=15, what="the second job to run")
    assert await dead_count(broker, jobs.TEST_QUEUE) == 0


async def test_purge_dead_asks_first_and_refuses_off_a_terminal_without_yes(settings, broker, deps, job_worker):
    jobs.ops_flaky_job.send(uuid.uuid4().hex)
    await wait_dead(broker, jobs.TEST_QUEUE, 1)
    env = cli_env(settings)

    refused = await run_queues(env, "purge-dead", jobs.TEST_QUEUE)
    assert refused.code == 1
    assert refused.err.strip() == "leadsms: purge-dead asks before deleting: pass --yes when not at a terminal"
    assert await dead_count(broker, jobs.TEST_QUEUE) == 1

    purged = await run_queues(env, "purge-dead", jobs.TEST_QUEUE, "--yes")
    assert purged.code == 0 and purged.out.strip() == f"deleted 1 dead letter(s) from {jobs.TEST_QUEUE}"
    assert await dead_count(broker, jobs.TEST_QUEUE) == 0


async def test_without_a_broker_the_command_says_so_in_one_line(settings):
    result = await run_queues(cli_env(settings, BROKER_URL=None, REDIS_URL=None))
    assert result.code == 2
    assert result.err.strip() == "leadsms: configuration error: BROKER_URL is not set (nor REDIS_URL)"
