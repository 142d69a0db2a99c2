import uuid

from ops.actors import ping_worker
from tests.support import wait_for


async def test_a_leadsms_worker_runs_an_async_actor_that_uses_the_pool(worker_pool, deps, broker, sim):
    worker_pool.start("ops")
    token = uuid.uuid4().hex
    ping_worker.send(token)
    answer = await wait_for(lambda: deps.redis.get(f"leadsms:ping:{token}"), timeout=30, what="the worker's answer")
    pid, _, when = answer.decode().partition(" ")
    assert int(pid) > 0 and when.startswith("20")
