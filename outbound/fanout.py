"""Fan-out: the firm's event log into one delivery row per (endpoint, wanted event).

Each endpoint's cursor moves in the transaction that inserts its rows, under the
endpoint's row lock (endpoints in id order, so two fan-outs never deadlock and the
second sees the first's cursor). Event cursors never skip, so nothing is lost whoever
crashes where; a duplicate row is impossible (unique per endpoint and cursor).
"""

from __future__ import annotations

from typing import Sequence

from outbound import queries
from shared.deps import Deps

BATCH = 1000
MAX_BATCHES = 20


async def fan_out(deps: Deps, firm_ids: Sequence[int] | None) -> dict[int, int]:
    """Fan out the new events of these firms (every firm when None); returns, per endpoint
    that got deliveries, how many."""
    created: dict[int, int] = {}
    async with deps.pool.acquire() as conn:
        for _ in range(MAX_BATCHES):
            async with conn.transaction():
                rows = await queries.fan_out(conn, firm_ids, BATCH)
            for r in rows:
                if r["created"]:
                    created[r["endpoint_id"]] = created.get(r["endpoint_id"], 0) + r["created"]
            if not any(r["read"] >= BATCH for r in rows):
                break
    return created
