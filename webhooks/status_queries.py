"""SQL of a status batch (status_batch.py): lock, read, and write back set-based.

`$n` parameters only. Locks are taken in one order by every batch: inbox rows (SKIP
LOCKED: a row another job holds is that job's), then messages in id order, then phone
flags in (firm, phone) order; the per-firm event counters come last, at commit, in firm-id
order (events/log.py, migration 0011).
"""

from __future__ import annotations

from typing import Sequence

import asyncpg

Row = asyncpg.Record


async def lock_unprocessed_status_rows(conn: asyncpg.Connection, inbox_ids: Sequence[int], limit: int, *,
                                       skip_locked: bool = True) -> list[Row]:
    """Up to `limit` of these inbox rows still unprocessed, locked; rows another job holds
    are skipped (`skip_locked`, a batch) or waited for (one row: its caller wants it done)."""
    wait = "SKIP LOCKED" if skip_locked else ""
    rows = await conn.fetch(
        f"""
        SELECT id, message_sid, twilio_status, message_id, params, received_at, processed_at FROM twilio_inbox
        WHERE id = ANY($1::bigint[]) AND kind = 'status' AND processed_at IS NULL
        ORDER BY id LIMIT $2
        FOR UPDATE {wait}
        """,
        list(inbox_ids), limit,
    )
    # (waiting, a row may have been processed by the job that held it: re-checked on the locked version)
    return [r for r in rows if r["processed_at"] is None]


async def lock_messages_for_status(conn: asyncpg.Connection, message_ids: Sequence[int],
                                   sids: Sequence[str]) -> list[Row]:
    """Every message named by id or by sid (any direction), locked in id order."""
    return await conn.fetch(
        """
        SELECT m.id, m.firm_id, m.conversation_id, m.direction, m.status, m.twilio_status, m.twilio_sid,
               m.error_code, m.error_message, m.from_number, m.created_at, c.phone_e164
        FROM messages m JOIN conversations c ON c.id = m.conversation_id
        WHERE m.id = ANY($1::bigint[]) OR m.twilio_sid = ANY($2::text[])
        ORDER BY m.id
        FOR UPDATE OF m
        """,
        list(message_ids), list(sids),
    )


async def erased_sids(conn: asyncpg.Connection, sids: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT message_sid FROM erased_messages WHERE message_sid = ANY($1::text[])", list(sids))
    return {r["message_sid"] for r in rows}


async def newest_applied(conn: asyncpg.Connection, sids: Sequence[str]) -> list[Row]:
    """Per sid, the (received_at, id) of its newest processed status row."""
    return await conn.fetch(
        """
        SELECT DISTINCT ON (message_sid) message_sid, received_at, id FROM twilio_inbox
        WHERE kind = 'status' AND message_sid = ANY($1::text[]) AND processed_at IS NOT NULL
        ORDER BY message_sid, received_at DESC, id DESC
        """,
        list(sids),
    )


async def create_flags(conn: asyncpg.Connection, firm_ids: Sequence[int], phones: Sequence[str]) -> None:
    """A flags row for each pair that has none (a failure is about to be counted), in lock order."""
    await conn.execute(
        """
        INSERT INTO phone_flags (firm_id, phone_e164)
        SELECT f, p FROM unnest($1::bigint[], $2::text[]) AS u(f, p) ORDER BY f, p
        ON CONFLICT (firm_id, phone_e164) DO NOTHING
        """,
        list(firm_ids), list(phones),
    )


async def lock_flags_many(conn: asyncpg.Connection, firm_ids: Sequence[int], phones: Sequence[str]) -> list[Row]:
    """The flags rows of these pairs that exist, locked in (firm, phone) order."""
    return await conn.fetch(
        """
        SELECT f.firm_id, f.phone_e164, f.consecutive_filter_failures, f.blocked
        FROM phone_flags f JOIN unnest($1::bigint[], $2::text[]) AS u(firm_id, phone_e164)
             ON f.firm_id = u.firm_id AND f.phone_e164 = u.phone_e164
        ORDER BY f.firm_id, f.phone_e164
        FOR UPDATE OF f
        """,
        list(firm_ids), list(phones),
    )


async def write_flags(conn: asyncpg.Connection, firm_ids: Sequence[int], phones: Sequence[str],
                      counts: Sequence[int], block_reasons: Sequence[str | None]) -> None:
    """The counts as decided; a reason blocks the phone (it was not blocked before)."""
    await conn.execute(
        """
        UPDATE phone_flags f
        SET consecutive_filter_failures = u.n,
            blocked = f.blocked OR u.reason IS NOT NULL,
            blocked_at = CASE WHEN u.reason IS NULL THEN f.blocked_at ELSE clock_timestamp() END,
            blocked_reason = COALESCE(u.reason, f.blocked_reason),
            updated_at = clock_timestamp()
        FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[]) AS u(firm_id, phone, n, reason)
        WHERE f.firm_id = u.firm_id AND f.phone_e164 = u.phone
        """,
        list(firm_ids), list(phones), list(counts), list(block_reasons),
    )


async def add_flag_events(conn: asyncpg.Connection, rows: Sequence[tuple[int, str, str, str | None, str | None, int]]) -> None:
    """phone_flag_events (firm, phone, kind, reason, actor, message_id), in the given order."""
    if not rows:
        return
    cols = list(zip(*rows))
    await conn.execute(
        """
        INSERT INTO phone_flag_events (firm_id, phone_e164, kind, reason, actor, message_id)
        SELECT f, p, k, r, a, m
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
             WITH ORDINALITY AS u(f, p, k, r, a, m, n)
        ORDER BY n
        """,
        *[list(c) for c in cols],
    )


async def write_message_statuses(conn: asyncpg.Connection, rows: Sequence[tuple]) -> None:
    """Each message's state after the batch: (id, status, twilio_status, twilio_sid,
    error_code, error_message, from_number)."""
    if not rows:
        return
    cols = [list(c) for c in zip(*rows)]
    await conn.execute(
        """
        UPDATE messages m
        SET status = u.status, twilio_status = u.twilio_status, twilio_sid = u.sid,
            error_code = u.error_code, error_message = u.error_message, from_number = u.from_number,
            updated_at = clock_timestamp()
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[])
             AS u(id, status, twilio_status, sid, error_code, error_message, from_number)
        WHERE m.id = u.id
        """,
        *cols,
    )


async def mark_processed_many(conn: asyncpg.Connection, inbox_ids: Sequence[int], outcomes: Sequence[str]) -> None:
    await conn.execute(
        """
        UPDATE twilio_inbox i SET processed_at = clock_timestamp(), outcome = u.outcome
        FROM unnest($1::bigint[], $2::text[]) AS u(id, outcome)
        WHERE i.id = u.id
        """,
        list(inbox_ids), list(outcomes),
    )


async def delete_inbox_many(conn: asyncpg.Connection, inbox_ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM twilio_inbox WHERE id = ANY($1::bigint[])", list(inbox_ids))
