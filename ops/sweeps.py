"""The sweeper's task for the ops figures: fold the counts' delta rows (migration 0016).

Every write to a counted table appends a few delta rows; folding them each pass keeps a
scrape's sum over a table of about one row per count.
"""

from __future__ import annotations

from ops import queries
from shared.deps import Deps


async def compact_metric_counts(deps: Deps) -> int:
    """Fold the delta rows; returns how many rows were folded."""
    async with deps.pool.acquire() as conn:
        return await queries.compact_counts(conn)


SWEEPS = {"compact_metric_counts": compact_metric_counts}
