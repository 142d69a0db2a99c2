"""SQL of consent: the opt-out list, staff removals, the consent history. `$n` only.

The state changes themselves (phone_flags + consent_events) are in `ledger.py`.
"""

from __future__ import annotations

from typing import Sequence

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def lock_opt_out(conn: asyncpg.Connection, firm_id: int, phone_e164: str) -> asyncpg.Record | None:
    """The phone's opt-out state for the firm, locked until the transaction ends."""
    return await conn.fetchrow(
        """
        SELECT opted_out, opted_out_source, opted_out_at FROM phone_flags
        WHERE firm_id = $1 AND phone_e164 = $2 FOR UPDATE
        """,
        firm_id, phone_e164,
    )


async def opted_out_source(conn: Conn, firm_id: int, phone_e164: str) -> str | None:
    return await conn.fetchval(
        "SELECT opted_out_source FROM phone_flags WHERE firm_id = $1 AND phone_e164 = $2 AND opted_out",
        firm_id, phone_e164,
    )


async def record_removal(conn: asyncpg.Connection, firm_id: int, phone_e164: str, source: str, by: str) -> None:
    await conn.execute(
        """
        INSERT INTO optout_removals (firm_id, phone_e164, source, removed_by) VALUES ($1, $2, $3, $4)
        ON CONFLICT (firm_id, phone_e164) DO UPDATE
            SET source = EXCLUDED.source, removed_by = EXCLUDED.removed_by, removed_at = clock_timestamp()
        """,
        firm_id, phone_e164, source, by,
    )


async def forget_removals(conn: asyncpg.Connection, firm_id: int, phones: Sequence[str]) -> int:
    """Forget staff removals of these phones (they are on the list again); how many."""
    result = await conn.execute(
        "DELETE FROM optout_removals WHERE firm_id = $1 AND phone_e164 = ANY($2::text[])", firm_id, list(phones),
    )
    return int(result.split()[-1])


async def removed_among(conn: asyncpg.Connection, firm_id: int, phones: Sequence[str]) -> set[str]:
    """Which of these phones staff removed from the firm's list."""
    rows = await conn.fetch(
        "SELECT phone_e164 FROM optout_removals WHERE firm_id = $1 AND phone_e164 = ANY($2::text[])",
        firm_id, list(phones),
    )
    return {r["phone_e164"] for r in rows}


async def opt_out_page(conn: Conn, firm_id: int, after_phone: str | None, limit: int) -> list[asyncpg.Record]:
    """The firm's opted-out phones in phone order, strictly after `after_phone` (keyset)."""
    return await conn.fetch(
        """
        SELECT phone_e164, opted_out_source AS source, opted_out_at AS at FROM phone_flags
        WHERE firm_id = $1 AND opted_out AND ($2::text IS NULL OR phone_e164 > $2)
        ORDER BY phone_e164
        LIMIT $3
        """,
        firm_id, after_phone, limit,
    )


async def consent_history(conn: Conn, firm_id: int, phone_e164: str) -> list[asyncpg.Record]:
    """Every consent event of the phone in the firm, oldest first."""
    return await conn.fetch(
        """
        SELECT id, phone_e164, kind, source, message_sid, detail, at FROM consent_events
        WHERE firm_id = $1 AND phone_e164 = $2
        ORDER BY id
        """,
        firm_id, phone_e164,
    )
