"""SQL of the change feed. `$n` parameters only; readers take no locks."""

from __future__ import annotations

from typing import Sequence

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

_ITEM = "seq, type, at, data::text AS data"


async def events_after(conn: Conn, firm_id: int, after: int, limit: int) -> list[asyncpg.Record]:
    """The firm's committed events with a cursor above `after`, in cursor order."""
    return await conn.fetch(
        f"SELECT firm_id, {_ITEM} FROM events WHERE firm_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        firm_id, after, limit,
    )


async def events_after_many(conn: Conn, firm_ids: Sequence[int], afters: Sequence[int],
                            limit: int) -> list[asyncpg.Record]:
    """For each (firm, after) pair, up to `limit` events above it: one round trip for the
    stream reader of a web process, whatever number of firms it serves."""
    return await conn.fetch(
        """
        SELECT p.firm_id, e.seq, e.type, e.at, e.data::text AS data
        FROM unnest($1::bigint[], $2::bigint[]) AS p(firm_id, after)
        CROSS JOIN LATERAL (
            SELECT seq, type, at, data FROM events
            WHERE events.firm_id = p.firm_id AND events.seq > p.after
            ORDER BY seq LIMIT $3) AS e
        ORDER BY p.firm_id, e.seq
        """,
        list(firm_ids), list(afters), limit,
    )


async def feed_bounds(conn: Conn, firm_id: int) -> asyncpg.Record:
    """(last_seq, pruned_to) of the firm: the newest committed cursor and the prune mark."""
    return await conn.fetchrow(
        """
        SELECT coalesce((SELECT last_seq FROM event_counters WHERE firm_id = $1), 0) AS last_seq,
               coalesce((SELECT pruned_to FROM event_prune_marks WHERE firm_id = $1), 0) AS pruned_to
        """,
        firm_id,
    )


async def last_seqs(conn: Conn, firm_ids: Sequence[int]) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT firm_id, last_seq FROM event_counters WHERE firm_id = ANY($1::bigint[])", list(firm_ids)
    )
    found = {r["firm_id"]: r["last_seq"] for r in rows}
    return {f: found.get(f, 0) for f in firm_ids}


async def prune_batch(conn: asyncpg.Connection, older_than_days: int, limit: int) -> list[asyncpg.Record]:
    """Delete up to `limit` of the oldest events past retention, moving each firm's prune
    mark up to the highest cursor deleted (in firm-id order, in the same transaction)."""
    return await conn.fetch(
        """
        WITH gone AS (
            DELETE FROM events WHERE id IN (
                SELECT id FROM events
                WHERE at < now() - make_interval(days => $1) AND seq IS NOT NULL
                ORDER BY at LIMIT $2)
            RETURNING firm_id, seq
        ), marks AS (
            SELECT firm_id, max(seq) AS top, count(*) AS n FROM gone GROUP BY firm_id
        ), moved AS (
            INSERT INTO event_prune_marks AS m (firm_id, pruned_to)
            SELECT firm_id, top FROM marks ORDER BY firm_id
            ON CONFLICT (firm_id) DO UPDATE SET pruned_to = greatest(m.pruned_to, EXCLUDED.pruned_to)
        )
        SELECT firm_id, top, n FROM marks ORDER BY firm_id
        """,
        older_than_days, limit,
    )
