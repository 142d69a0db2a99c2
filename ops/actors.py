"""A diagnostic actor: proves a worker is up, on dramatiq's loop, and reaching PostgreSQL.

`ping_worker.send(token)` makes a worker read the database's clock through its pool
and write it to Redis under `leadsms:ping:<token>`; operations and the tests read it.
"""

from __future__ import annotations

import os

from shared import deps
from shared.broker import actor


async def answer_ping(d: deps.Deps, token: str) -> str:
    now = await d.pool.fetchval("SELECT now()")
    answer = f"{os.getpid()} {now.isoformat()}"
    await d.redis.set(f"leadsms:ping:{token}", answer, ex=300)
    return answer


@actor(queue_name="ops", max_retries=0)
async def ping_worker(token: str) -> None:
    await answer_ping(deps.current(), token)
