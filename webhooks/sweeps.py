"""Sweep tasks of this package: name -> async fn(deps). Run by `leadsms sweeper`.

`replay_inbox`: an inbox row still unprocessed STALE_AFTER_S after it arrived lost its
job (the broker was down when the webhook answered, or a worker died): enqueue it again.
The handlers apply a row once, so a row whose job was merely slow costs a no-op. Each
re-enqueue is marked (`requeued_at`), as the other sweeps mark theirs: a row is enqueued
again only STALE_AFTER_S later, so a worker outage does not pile up copies every pass,
and the rows re-enqueued least recently go first, so newer lost rows are reached rather
than starving behind the same oldest batch.
"""

from __future__ import annotations

import structlog

from shared.deps import Deps
from webhooks import queries
from webhooks.dispatch import enqueue_inbox

log = structlog.get_logger(__name__)

BATCH = 1000


async def replay_inbox(deps: Deps, *, batch: int = BATCH) -> int:
    """Re-enqueue stale unprocessed inbox rows not re-enqueued within STALE_AFTER_S; how many."""
    rows = await queries.take_stale_inbox(deps.pool, deps.settings.stale_after_s, batch)
    for row in rows:
        await enqueue_inbox(row["kind"], row["id"])
    if rows:
        log.info("inbox_replayed", count=len(rows))
    return len(rows)


SWEEPS: dict = {"replay_inbox": replay_inbox}
