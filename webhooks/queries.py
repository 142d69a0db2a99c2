"""SQL of the webhooks package: the inbox, message status, phone flags and their audit.

`$n` parameters only. The service decides transactions; functions that lock say so.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from firms.queries import firm_for_number

Row = asyncpg.Record

# ---- twilio_inbox ----------------------------------------------------------------------


async def insert_inbox(conn: asyncpg.Connection, kind: str, message_sid: str, twilio_status: str,
                       message_id: int | None, params: dict[str, Any]) -> int | None:
    """Store a webhook; the new row's id, or None when this (kind, sid, status) is stored already."""
    return await conn.fetchval(
        """
        INSERT INTO twilio_inbox (kind, message_sid, twilio_status, message_id, params)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (kind, message_sid, twilio_status) DO NOTHING
        RETURNING id
        """,
        kind, message_sid, twilio_status, message_id, params,
    )


async def find_inbox(conn: asyncpg.Connection, kind: str, message_sid: str, twilio_status: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT id, processed_at FROM twilio_inbox WHERE kind = $1 AND message_sid = $2 AND twilio_status = $3",
        kind, message_sid, twilio_status,
    )


async def insert_status_batch(conn: asyncpg.Connection, sids: list[str], statuses: list[str],
                              message_ids: list[int | None], params_json: list[str]) -> list[Row]:
    """Store a batch of status callbacks in one statement (the group commit), in arrival
    order; the rows actually inserted (id, message_sid, twilio_status). A (sid, status)
    stored already, or twice in the batch, is skipped: `find_inbox_batch` finds it."""
    return await conn.fetch(
        """
        INSERT INTO twilio_inbox (kind, message_sid, twilio_status, message_id, params)
        SELECT 'status', t.sid, t.status, t.message_id, t.params::jsonb
        FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
             WITH ORDINALITY AS t(sid, status, message_id, params, ord)
        ORDER BY t.ord
        ON CONFLICT (kind, message_sid, twilio_status) DO NOTHING
        RETURNING id, message_sid, twilio_status
        """,
        sids, statuses, message_ids, params_json,
    )


async def status_callback_owners(conn: asyncpg.Connection, message_ids: list[int | None],
                                 sids: list[str]) -> list[Row]:
    """For a batch of status callbacks, in order: whether each names a message of ours (by
    our id from `?m=`, else by its MessageSid), that message's firm's Twilio account (NULL:
    the main account), and, for one naming none of ours, whether its message was erased."""
    return await conn.fetch(
        """
        SELECT t.ord, o.found IS NOT NULL AS ours, o.twilio_account_sid,
               o.found IS NULL AND EXISTS (SELECT 1 FROM erased_messages e WHERE e.message_sid = t.sid) AS erased
        FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS t(message_id, sid, ord)
        LEFT JOIN LATERAL (
            SELECT true AS found, f.twilio_account_sid
            FROM (SELECT m.firm_id, 1 AS pri FROM messages m WHERE m.id = t.message_id
                  UNION ALL
                  SELECT m.firm_id, 2 FROM messages m WHERE m.twilio_sid = t.sid AND t.sid <> '') hit
            JOIN firms f ON f.id = hit.firm_id
            ORDER BY hit.pri LIMIT 1
        ) o ON true
        ORDER BY t.ord
        """,
        message_ids, sids,
    )


async def find_inbox_batch(conn: asyncpg.Connection, kind: str, sids: list[str], statuses: list[str]) -> list[Row]:
    """The stored rows of these (sid, status) pairs: id, message_sid, twilio_status, processed_at."""
    return await conn.fetch(
        """
        SELECT i.id, i.message_sid, i.twilio_status, i.processed_at
        FROM unnest($2::text[], $3::text[]) AS k(sid, status)
        JOIN twilio_inbox i ON i.kind = $1 AND i.message_sid = k.sid AND i.twilio_status = k.status
        """,
        kind, sids, statuses,
    )


async def lock_inbox(conn: asyncpg.Connection, inbox_id: int) -> Row | None:
    """The inbox row, locked until the transaction ends (one applier at a time)."""
    return await conn.fetchrow("SELECT * FROM twilio_inbox WHERE id = $1 FOR UPDATE", inbox_id)


async def mark_processed(conn: asyncpg.Connection, inbox_id: int, outcome: str) -> None:
    await conn.execute(
        "UPDATE twilio_inbox SET processed_at = clock_timestamp(), outcome = $2 WHERE id = $1",
        inbox_id, outcome,
    )


async def take_stale_inbox(conn: asyncpg.Connection | asyncpg.Pool, stale_after_s: float, limit: int) -> list[Row]:
    """Unprocessed inbox rows older than `stale_after_s` (their job was lost) and not
    re-enqueued within it, least recently re-enqueued first; marks them re-enqueued now."""
    return await conn.fetch(
        """
        UPDATE twilio_inbox SET requeued_at = clock_timestamp()
        WHERE id IN (
            SELECT id FROM twilio_inbox
            WHERE processed_at IS NULL
              AND received_at < clock_timestamp() - make_interval(secs => $1)
              AND (requeued_at IS NULL OR requeued_at < clock_timestamp() - make_interval(secs => $1))
            ORDER BY coalesce(requeued_at, received_at), id
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
          AND processed_at IS NULL
        RETURNING id, kind
        """,
        float(stale_after_s), limit,
    )


async def delete_old_processed_inbox(conn: asyncpg.Connection | asyncpg.Pool, retention_days: int, limit: int) -> int:
    """Delete up to `limit` processed inbox rows received more than `retention_days` ago,
    oldest first; how many. Unprocessed rows are never deleted."""
    rows = await conn.fetch(
        """
        DELETE FROM twilio_inbox
        WHERE id IN (
            SELECT id FROM twilio_inbox
            WHERE processed_at IS NOT NULL
              AND received_at < clock_timestamp() - make_interval(days => $1)
            ORDER BY received_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
        RETURNING id
        """,
        retention_days, limit,
    )
    return len(rows)


async def newer_status_applied(conn: asyncpg.Connection, message_sid: str, inbox_id: int, received_at: Any) -> bool:
    """True when a status callback received after this one has been applied already."""
    return await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM twilio_inbox
            WHERE kind = 'status' AND message_sid = $1 AND processed_at IS NOT NULL
              AND (received_at, id) > ($3, $2)
        )
        """,
        message_sid, inbox_id, received_at,
    )


# ---- firms, conversations --------------------------------------------------------------


async def firm_by_number(conn: asyncpg.Connection, number: str, messaging_service_sid: str | None = None) -> Row | None:
    """The firm an inbound text to `number` belongs to (firms/queries.py: the current
    owner, else the last firm that had it, else the Messaging Service's firm)."""
    return await firm_for_number(conn, number, messaging_service_sid)


async def firm_by_id(conn: asyncpg.Connection, firm_id: int) -> Row | None:
    return await conn.fetchrow("SELECT id, default_region FROM firms WHERE id = $1", firm_id)


async def conversation_of_firm(conn: asyncpg.Connection, firm_id: int, conversation_id: int) -> Row | None:
    return await conn.fetchrow(
        "SELECT id, phone_e164, lead_id FROM conversations WHERE id = $1 AND firm_id = $2",
        conversation_id, firm_id,
    )


# ---- messages --------------------------------------------------------------------------

_MESSAGE_FOR_STATUS = """
    SELECT m.id, m.firm_id, m.direction, m.status, m.twilio_sid, m.error_code, c.phone_e164
    FROM messages m JOIN conversations c ON c.id = m.conversation_id
"""


async def lock_message_by_id(conn: asyncpg.Connection, message_id: int) -> Row | None:
    return await conn.fetchrow(_MESSAGE_FOR_STATUS + " WHERE m.id = $1 FOR UPDATE OF m", message_id)


async def lock_message_by_sid(conn: asyncpg.Connection, twilio_sid: str) -> Row | None:
    return await conn.fetchrow(_MESSAGE_FOR_STATUS + " WHERE m.twilio_sid = $1 FOR UPDATE OF m", twilio_sid)


async def message_id_with_sid(conn: asyncpg.Connection, twilio_sid: str) -> int | None:
    return await conn.fetchval("SELECT id FROM messages WHERE twilio_sid = $1", twilio_sid)


async def update_message_status(conn: asyncpg.Connection, message_id: int, *, status: str,
                                twilio_status: str | None, twilio_sid: str, error_code: int | None,
                                error_message: str | None, from_number: str | None = None) -> None:
    """Write what a callback says: status (already checked forward-only), Twilio's word
    when it is the latest, the sid when none is stored yet, the error when given."""
    await conn.execute(
        """
        UPDATE messages
        SET status = $2,
            twilio_status = COALESCE($3, twilio_status),
            twilio_sid = COALESCE(twilio_sid, $4),
            error_code = COALESCE($5, error_code),
            error_message = CASE WHEN $5::integer IS NULL THEN error_message ELSE $6 END,
            from_number = COALESCE(from_number, $7),
            updated_at = clock_timestamp()
        WHERE id = $1
        """,
        message_id, status, twilio_status, twilio_sid, error_code, error_message, from_number,
    )


async def insert_inbound_message(conn: asyncpg.Connection, *, firm_id: int, conversation_id: int, body: str,
                                 twilio_status: str, twilio_sid: str, segments: int | None,
                                 received_at: Any) -> int | None:
    """Store a reply; its id, or None when a message with this sid is stored already.
    (`created_at` is Twilio's time, so the thread reads in the order texts arrived; a
    reply filed late can sort before a page already read: follow a thread by the feed.)"""
    return await conn.fetchval(
        """
        INSERT INTO messages (firm_id, conversation_id, direction, body, status, twilio_status,
                              twilio_sid, segments, received_at, created_at)
        VALUES ($1, $2, 'in', $3, 'received', $4, $5, $6, $7, $7)
        ON CONFLICT (twilio_sid) DO NOTHING
        RETURNING id
        """,
        firm_id, conversation_id, body, twilio_status, twilio_sid, segments, received_at,
    )


async def next_message_id(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT nextval('messages_id_seq')")


async def take_help_reply_slot(conn: asyncpg.Connection, firm_id: int, phone_e164: str, message_id: int) -> bool:
    """Claim today's HELP reply for the phone: True unless one went out in the last day."""
    return bool(await conn.fetchval(
        """
        INSERT INTO help_replies AS h (firm_id, phone_e164, message_id) VALUES ($1, $2, $3)
        ON CONFLICT (firm_id, phone_e164) DO UPDATE
            SET replied_at = clock_timestamp(), message_id = EXCLUDED.message_id
            WHERE h.replied_at < clock_timestamp() - interval '1 day'
        RETURNING true
        """,
        firm_id, phone_e164, message_id,
    ))


# ---- phone_flags and their audit -------------------------------------------------------


async def add_flag_event(conn: asyncpg.Connection, firm_id: int, phone_e164: str, kind: str, *,
                         reason: str | None = None, actor: str | None = None, message_id: int | None = None) -> None:
    await conn.execute(
        """
        INSERT INTO phone_flag_events (firm_id, phone_e164, kind, reason, actor, message_id)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        firm_id, phone_e164, kind, reason, actor, message_id,
    )


async def count_filter_failure(conn: asyncpg.Connection, firm_id: int, phone_e164: str) -> Row:
    """One more consecutive carrier-filter failure; returns (consecutive_filter_failures, blocked)."""
    return await conn.fetchrow(
        """
        INSERT INTO phone_flags AS f (firm_id, phone_e164, consecutive_filter_failures)
        VALUES ($1, $2, 1)
        ON CONFLICT (firm_id, phone_e164) DO UPDATE
            SET consecutive_filter_failures = f.consecutive_filter_failures + 1,
                updated_at = clock_timestamp()
        RETURNING consecutive_filter_failures, blocked
        """,
        firm_id, phone_e164,
    )


async def block_phone(conn: asyncpg.Connection, firm_id: int, phone_e164: str, reason: str) -> bool:
    """Block the phone for the firm; True when it was not blocked before."""
    return bool(await conn.fetchval(
        """
        UPDATE phone_flags
        SET blocked = true, blocked_at = clock_timestamp(), blocked_reason = $3, updated_at = clock_timestamp()
        WHERE firm_id = $1 AND phone_e164 = $2 AND NOT blocked
        RETURNING true
        """,
        firm_id, phone_e164, reason,
    ))


async def reset_filter_failures(conn: asyncpg.Connection, firm_id: int, phone_e164: str) -> int | None:
    """Zero the consecutive-failure count; the count it had, or None when it was 0 already."""
    return await conn.fetchval(
        """
        UPDATE phone_flags f
        SET consecutive_filter_failures = 0, updated_at = clock_timestamp()
        FROM (SELECT consecutive_filter_failures AS before FROM phone_flags
              WHERE firm_id = $1 AND phone_e164 = $2 FOR UPDATE) old
        WHERE f.firm_id = $1 AND f.phone_e164 = $2 AND old.before > 0
        RETURNING old.before
        """,
        firm_id, phone_e164,
    )


async def unblock_phone(conn: asyncpg.Connection, firm_id: int, phone_e164: str) -> bool:
    """Lift a block and start the failure count afresh; True when it was blocked."""
    return bool(await conn.fetchval(
        """
        UPDATE phone_flags
        SET blocked = false, blocked_at = NULL, blocked_reason = NULL,
            consecutive_filter_failures = 0, updated_at = clock_timestamp()
        WHERE firm_id = $1 AND phone_e164 = $2 AND blocked
        RETURNING true
        """,
        firm_id, phone_e164,
    ))


async def pause_for_review(conn: asyncpg.Connection, firm_id: int, phone_e164: str) -> bool:
    """Pause the phone's sends for review of a reply (the webhook's transaction), unless it
    is opted out. The reply's message id is attached when the reply is filed
    (`attach_review_message`). True when sends are paused now."""
    return bool(await conn.fetchval(
        """
        INSERT INTO phone_flags AS f (firm_id, phone_e164, review_pending)
        VALUES ($1, $2, true)
        ON CONFLICT (firm_id, phone_e164) DO UPDATE
            SET review_pending = true, updated_at = clock_timestamp()
            WHERE NOT f.opted_out
        RETURNING true
        """,
        firm_id, phone_e164,
    ))


async def attach_review_message(conn: asyncpg.Connection, firm_id: int, phone_e164: str, message_id: int) -> bool:
    """Name the filed reply as the one under review; True when a review paused by the
    webhook was waiting for it (False: it was opened by an earlier reply, decided
    already, or the phone is opted out)."""
    return bool(await conn.fetchval(
        """
        UPDATE phone_flags SET review_message_id = $3, updated_at = clock_timestamp()
        WHERE firm_id = $1 AND phone_e164 = $2 AND review_pending AND review_message_id IS NULL
              AND NOT opted_out
        RETURNING true
        """,
        firm_id, phone_e164, message_id,
    ))


async def lock_flags(conn: asyncpg.Connection, firm_id: int, phone_e164: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT * FROM phone_flags WHERE firm_id = $1 AND phone_e164 = $2 FOR UPDATE",
        firm_id, phone_e164,
    )


async def close_review(conn: asyncpg.Connection, firm_id: int, phone_e164: str) -> None:
    await conn.execute(
        """
        UPDATE phone_flags SET review_pending = false, review_message_id = NULL, updated_at = clock_timestamp()
        WHERE firm_id = $1 AND phone_e164 = $2
        """,
        firm_id, phone_e164,
    )


async def delete_inbox(conn: asyncpg.Connection, inbox_id: int) -> None:
    await conn.execute("DELETE FROM twilio_inbox WHERE id = $1", inbox_id)
