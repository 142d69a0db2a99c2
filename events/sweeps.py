"""The sweeper's task for the change feed: prune events past `EVENTS_RETENTION_DAYS`.

In batches, each its own short transaction, so a big backlog never holds a long lock;
each firm's prune mark moves up with what was deleted, and a cursor below it gets 410.
"""

from __future__ import annotations

from events import queries
from shared.deps import Deps

PRUNE_BATCH = 5000
MAX_BATCHES_PER_PASS = 20


async def prune_events(deps: Deps) -> int:
    """Delete expired events; returns how many."""
    total = 0
    async with deps.pool.acquire() as conn:
        for _ in range(MAX_BATCHES_PER_PASS):
            async with conn.transaction():
                marks = await queries.prune_batch(conn, deps.settings.events_retention_days, PRUNE_BATCH)
            deleted = sum(m["n"] for m in marks)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
    return total


SWEEPS = {"prune_events": prune_events}
