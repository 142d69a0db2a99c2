"""dramatiq actors of outbound webhooks, on their own `deliveries` queue."""

from __future__ import annotations

from outbound import delivery, lanes
from shared import deps
from shared.broker import DELIVERIES_QUEUE, actor, enqueue
from shared.deps import Deps


@actor(queue_name=DELIVERIES_QUEUE, max_retries=3, min_backoff=1000, max_backoff=10000)
async def drain_endpoint(endpoint_id: int, lane: int, token: str) -> None:
    """Deliver what is due to one endpoint on one of its two lanes; hand the lane on to a
    new job when the time budget ran out with work left."""
    current = deps.current()
    drained = await delivery.drain(current, endpoint_id, lane, token)
    if drained.more:
        await start_drains(current, [endpoint_id])
    elif drained.next_due_in_s is not None:
        # A retry due soon comes back by a short delay; a later one waits in PostgreSQL
        # for the sweeper (no dramatiq delay is longer than RETRY_MAX_BACKOFF_MS).
        delay_ms = int(drained.next_due_in_s * 1000) + 50
        if delay_ms <= current.settings.retry_max_backoff_ms:
            await enqueue(kick_endpoint, endpoint_id, delay_ms=delay_ms)


@actor(queue_name=DELIVERIES_QUEUE, max_retries=3, min_backoff=1000, max_backoff=10000)
async def kick_endpoint(endpoint_id: int) -> None:
    """Start drains for an endpoint whose next retry is due now (if its lanes are free)."""
    await start_drains(deps.current(), [endpoint_id], want=1)


async def start_drains(current: Deps, endpoint_ids: list[int], want: int = lanes.LANES) -> int:
    """Take the free lanes of these endpoints and enqueue a drain job for each; how many."""
    started = 0
    for endpoint_id in endpoint_ids:
        for lane, token in await lanes.take(current.redis, endpoint_id, lanes.lease_s(current.settings), want):
            try:
                await enqueue(drain_endpoint, endpoint_id, lane, token)
            except Exception:
                await lanes.release(current.redis, endpoint_id, lane, token)
                raise
            started += 1
    return started
