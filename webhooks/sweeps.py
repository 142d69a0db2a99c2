"""Sweep tasks of this package: name -> async fn(deps). Run by `leadsms sweeper`.

`replay_inbox`: an inbox row still unprocessed STALE_AFTER_S after it arrived lost its
job (the broker was down when the webhook answered, or a worker died): enqueue it again.
The handlers apply a row once, so a row whose job was merely slow costs a no-op. Each
re-enqueue is marked (`requeued_at`), as the other sweeps mark theirs: a row is enqueued
again only STALE_AFTER_S later, so a worker outage does not pile up copies every pass,
and the rows re-enqueued least recently go first, so newer lost rows are reached rather
than starving behind the same oldest batch.

`prune_inbox`: processed inbox rows received more than INBOX_RETENTION_DAYS ago are
deleted, in batches of PRUNE_BATCH rows (one short statement each, so no long lock and
no long transaction), at most PRUNE_BATCHES a pass. A row not yet processed is kept
whatever its age: the replay still owes it its job.
"""

from __future__ import annotations

import structlog

from shared.deps import Deps
from shared.sweeper import in_batches
from webhooks import queries
from shared.broker import enqueue
from webhooks.actors import apply_status_batch
from webhooks.dispatch import enqueue_inbox
from webhooks.status_batch import chunks

log = structlog.get_logger(__name__)

BATCH = 1000
PRUNE_BATCH = 500
PRUNE_BATCHES = 20


async def replay_inbox(deps: Deps, *, batch: int = BATCH) -> int:
    """Re-enqueue stale unprocessed inbox rows not re-enqueued within STALE_AFTER_S; how many."""
    rows = await queries.take_stale_inbox(deps.pool, deps.settings.stale_after_s, batch)
    status = [row["id"] for row in rows if row["kind"] == "status"]
    for chunk in chunks(status):  # status rows in batches, as the web enqueues them
        await enqueue(apply_status_batch, chunk)
    for row in rows:
        if row["kind"] != "status":
            await enqueue_inbox(row["kind"], row["id"])
    if rows:
        log.info("inbox_replayed", count=len(rows))
    return len(rows)


async def prune_inbox(deps: Deps, *, batch: int = PRUNE_BATCH, batches: int = PRUNE_BATCHES) -> int:
    """Delete processed inbox rows past INBOX_RETENTION_DAYS, a batch at a time; how many."""
    days = deps.settings.inbox_retention_days
    deleted = await in_batches(lambda limit: queries.delete_old_processed_inbox(deps.pool, days, limit),
                               batch, batches)
    if deleted:
        log.info("inbox_pruned", count=deleted, retention_days=days)
    return deleted


SWEEPS: dict = {"replay_inbox": replay_inbox, "prune_inbox": prune_inbox}
