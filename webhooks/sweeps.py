"""Sweep tasks of this package: name -> async fn(deps). Run by `leadsms sweeper`.

`replay_inbox`: an inbox row still unprocessed STALE_AFTER_S after it arrived lost its
job (the broker was down when the webhook answered, or a worker died): enqueue it again.
The handlers apply a row once, so a row whose job was merely slow costs a no-op.
"""

from __future__ import annotations

import structlog

from shared.deps import Deps
from webhooks import queries
from webhooks.dispatch import enqueue_inbox

log = structlog.get_logger(__name__)

BATCH = 1000


async def replay_inbox(deps: Deps) -> int:
    """Re-enqueue stale unprocessed inbox rows, oldest first; returns how many."""
    rows = await queries.stale_inbox(deps.pool, deps.settings.stale_after_s, BATCH)
    for row in rows:
        await enqueue_inbox(row["kind"], row["id"])
    if rows:
        log.info("inbox_replayed", count=len(rows))
    return len(rows)


SWEEPS: dict = {"replay_inbox": replay_inbox}
