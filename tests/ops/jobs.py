"""Actors the ops tests run on the real Redis broker.

They live on queues of their own (`ops_test`, `ops_idle`), not on `ops`: a `leadsms
worker` left running by another test module consumes every platform queue, would take
these messages, not know the actor, and dead-letter them under our feet.
"""

from __future__ import annotations

from typing import Any

from shared.broker import actor
from shared.deps import redis_client

TEST_QUEUE = "ops_test"
IDLE_QUEUE = "ops_idle"  # no worker ever consumes it: its depth stays put

STATE: dict[str, Any] = {"redis_url": None}


def fixed_key(token: str) -> str:
    return f"ops-test:fixed:{token}"


def done_key(token: str) -> str:
    return f"ops-test:done:{token}"


@actor(queue_name=TEST_QUEUE, max_retries=0)
async def ops_flaky_job(token: str) -> None:
    """Fails until the test has 'fixed' it (a Redis key), then records that it ran."""
    r = redis_client(STATE["redis_url"])
    try:
        if not await r.exists(fixed_key(token)):
            raise RuntimeError(f"job {token} cannot run yet")
        await r.set(done_key(token), "1", ex=300)
    finally:
        await r.aclose()


@actor(queue_name=IDLE_QUEUE, max_retries=0)
async def ops_idle_job(n: int) -> None:  # pragma: no cover - never consumed
    return None
