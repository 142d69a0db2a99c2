"""Handing stored inbox rows to their queues: `status` -> apply_status (apply_status_batch
for many), `inbound` -> handle_inbound.

A webhook's row is already committed when these run, so a broker failure is only logged:
the sweeper re-enqueues unprocessed rows.
"""

from __future__ import annotations

import asyncio

import structlog

from shared import async_enqueue
from shared.broker import enqueue
from webhooks import actors, status_batch

log = structlog.get_logger(__name__)

# How long a webhook waits for the broker before answering anyway. Twilio gives a webhook
# 15 s; an unreachable (not refusing) broker host could otherwise eat all of it.
ENQUEUE_TIMEOUT_S = 3.0


async def enqueue_inbox(kind: str, inbox_id: int) -> None:
    """Hand the row to its queue: `status` -> apply_status, `inbound` -> handle_inbound."""
    target = actors.apply_status if kind == "status" else actors.handle_inbound
    await enqueue(target, inbox_id)


async def enqueue_quietly(kind: str, inbox_id: int) -> bool:
    """Enqueue, but a broker failure is only logged: the row is safe, the sweeper replays it."""
    try:
        await asyncio.wait_for(enqueue_inbox(kind, inbox_id), ENQUEUE_TIMEOUT_S)
    except Exception as exc:  # any broker trouble: Twilio must still get its 2xx
        log.warning("inbox_enqueue_failed", kind=kind, inbox_id=inbox_id, error=f"{type(exc).__name__}: {exc}")
        return False
    return True


async def enqueue_many_quietly(kind: str, inbox_ids: list[int]) -> bool:
    """`enqueue_quietly` for a batch: status rows go as `apply_status_batch` jobs (one per
    MAX_ROWS rows), inbound rows one job each; one Redis round trip on a RedisBroker."""
    if not inbox_ids:
        return True
    if kind == "status":
        jobs = [(actors.apply_status_batch, (chunk,)) for chunk in status_batch.chunks(inbox_ids)]
    else:
        jobs = [(actors.handle_inbound, (i,)) for i in inbox_ids]
    broker = jobs[0][0].broker
    try:
        if async_enqueue.supports(broker):
            await asyncio.wait_for(async_enqueue.enqueue_many(broker, jobs), ENQUEUE_TIMEOUT_S)
        else:
            await asyncio.wait_for(asyncio.gather(*(enqueue(actor, *args) for actor, args in jobs)),
                                   ENQUEUE_TIMEOUT_S)
    except Exception as exc:  # any broker trouble: Twilio must still get its 2xx
        log.warning("inbox_enqueue_failed", kind=kind, inbox_ids=len(inbox_ids), first_inbox_id=inbox_ids[0],
                    error=f"{type(exc).__name__}: {exc}")
        return False
    return True
