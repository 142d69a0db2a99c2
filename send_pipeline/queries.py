"""SQL of the send pipeline, as functions. `$n` parameters only; the service decides
transactions.

The worker-side UPDATEs are the "sends happen once" rule written down: a claim only
takes a `queued` row without a sid (and re-checks the sendable decision in the same
statement), every later write names the claim it belongs to (`claimed_at`), and nothing
moves a message backwards in rank.
"""

from __future__ import annotations

from datetime import datetime
import asyncpg

from conversations.queries import MESSAGE_COLUMNS

Conn = asyncpg.Connection | asyncpg.Pool

# ---- reads (web) ---------------------------------------------------------------------------


async def fetch_message(conn: Conn, firm_id: int, message_id: int) -> asyncpg.Record | None:
    """One message of the firm (None for another firm's or an unknown id)."""
    return await conn.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND firm_id = $2", message_id, firm_id
    )


async def lead_for_conversation(conn: Conn, firm_id: int, lead_id: int) -> asyncpg.Record | None:
    """The lead's phone and its sendable code (None when the lead is not the firm's)."""
    return await conn.fetchrow(
        """
        SELECT id, phone_e164, send_block_code(firm_id, phone_status, phone_e164) AS code
        FROM leads WHERE id = $1 AND firm_id = $2
        """,
        lead_id, firm_id,
    )


async def conversation_exists(conn: Conn, firm_id: int, conversation_id: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM conversations WHERE id = $1 AND firm_id = $2", conversation_id, firm_id
    ))


async def thread_page(conn: Conn, conversation_id: int, after_id: int | None, limit: int) -> list[asyncpg.Record]:
    """Messages oldest first, strictly after the message `after_id` (keyset on created_at, id)."""
    return await conn.fetch(
        f"""
        SELECT {MESSAGE_COLUMNS} FROM messages
        WHERE conversation_id = $1
          AND ($2::bigint IS NULL OR (created_at, id) >
               (SELECT created_at, id FROM messages WHERE id = $2 AND conversation_id = $1))
        ORDER BY created_at, id
        LIMIT $3
        """,
        conversation_id, after_id, limit,
    )


# ---- the send request (web) --------------------------------------------------------------


async def conversation_for_send(conn: Conn, firm_id: int, conversation_id: int) -> asyncpg.Record | None:
    """The conversation's sendable code and, when sendable, a fresh message id.

    One round trip: the id is allocated here (before the duplicate window is taken, which
    holds it) only for a sendable conversation of this firm.
    """
    return await conn.fetchrow(
        """
        SELECT b.code,
               CASE WHEN b.code IS NULL THEN nextval('messages_id_seq') END AS new_id
        FROM conversations c
        CROSS JOIN LATERAL (SELECT send_block_code(c.firm_id, 'valid', c.phone_e164) AS code) b
        WHERE c.id = $1 AND c.firm_id = $2
        """,
        conversation_id, firm_id,
    )


async def insert_queued_message(conn: Conn, message_id: int, firm_id: int, conversation_id: int,
                                body: str, sent_by: str, segments: int) -> asyncpg.Record:
    """Insert the message `queued` and bump the conversation, as one statement (atomic)."""
    return await conn.fetchrow(
        f"""
        WITH m AS (
            INSERT INTO messages (id, firm_id, conversation_id, direction, body, sent_by, status, segments)
            VALUES ($1, $2, $3, 'out', $4, $5, 'queued', $6)
            RETURNING {MESSAGE_COLUMNS}
        ), bumped AS (
            UPDATE conversations
            SET last_message_at = greatest(coalesce(last_message_at, '-infinity'), clock_timestamp())
            WHERE id = $3
        )
        SELECT * FROM m
        """,
        message_id, firm_id, conversation_id, body, sent_by, segments,
    )


# ---- the worker ----------------------------------------------------------------------------


async def claim_message(conn: Conn, message_id: int) -> asyncpg.Record | None:
    """Take a due `queued` message: `sending` when sendable, else `blocked` with the code.

    None when the row is not ours to take (already claimed, sent, final, or not yet due).
    The sendable re-check is in the same statement, so a STOP committed before the claim
    blocks the send.
    """
    return await conn.fetchrow(
        """
        UPDATE messages AS m
        SET status = CASE WHEN b.code IS NULL THEN 'sending' ELSE 'blocked' END,
            blocked_reason = b.code,
            claimed_at = CASE WHEN b.code IS NULL THEN now() ELSE m.claimed_at END,
            attempts = m.attempts + CASE WHEN b.code IS NULL THEN 1 ELSE 0 END,
            next_attempt_at = NULL,
            updated_at = clock_timestamp()
        FROM conversations AS c
        JOIN firms AS f ON f.id = c.firm_id
        CROSS JOIN LATERAL (SELECT send_block_code(c.firm_id, 'valid', c.phone_e164) AS code) AS b
        WHERE m.id = $1 AND c.id = m.conversation_id
          AND m.status = 'queued' AND m.direction = 'out' AND m.twilio_sid IS NULL
          AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= now())
        RETURNING m.id, m.firm_id, m.status, m.blocked_reason, m.body, m.attempts, m.claimed_at,
                  m.created_at, c.phone_e164 AS to_phone, f.sms_number AS from_phone
        """,
        message_id,
    )


async def queued_wait_ms(conn: Conn, message_id: int) -> int | None:
    """For a `queued` message not yet due: milliseconds until it is; else None."""
    return await conn.fetchval(
        """
        SELECT ceil(extract(epoch FROM next_attempt_at - now()) * 1000)::int FROM messages
        WHERE id = $1 AND status = 'queued' AND next_attempt_at > now()
        """,
        message_id,
    )


async def store_sent(conn: Conn, message_id: int, sid: str, twilio_status: str, segments: int | None) -> asyncpg.Record | None:
    """Record Twilio's sid. Rank-aware: a status callback that got here first (delivered,
    undelivered...) keeps its status and its `twilio_status`."""
    return await conn.fetchrow(
        """
        UPDATE messages SET
            twilio_sid = coalesce(twilio_sid, $2),
            twilio_status = CASE WHEN status IN ('queued', 'sending') OR twilio_status IS NULL
                                 THEN $3 ELSE twilio_status END,
            status = CASE WHEN status IN ('queued', 'sending') THEN 'sent' ELSE status END,
            segments = coalesce($4, segments),
            next_attempt_at = NULL,
            updated_at = clock_timestamp()
        WHERE id = $1
        RETURNING status, twilio_sid
        """,
        message_id, sid, twilio_status, segments,
    )


async def requeue_after(conn: Conn, message_id: int, claimed_at: datetime, delay_ms: int) -> bool:
    """Back to `queued`, due in `delay_ms`: Twilio never received this claim's request."""
    return bool(await conn.fetchval(
        """
        UPDATE messages SET status = 'queued',
                            next_attempt_at = now() + $3 * interval '1 millisecond',
                            updated_at = clock_timestamp()
        WHERE id = $1 AND status = 'sending' AND claimed_at = $2 AND twilio_sid IS NULL
        RETURNING true
        """,
        message_id, claimed_at, delay_ms,
    ))


async def mark_ambiguous(conn: Conn, message_id: int, claimed_at: datetime, reconcile_after_s: float) -> bool:
    """Stay `sending`; the sweeper may reconcile it `reconcile_after_s` from now (the call
    is over, so only Twilio's list lag is left to wait for)."""
    return bool(await conn.fetchval(
        """
        UPDATE messages SET next_attempt_at = now() + make_interval(secs => $3),
                            updated_at = clock_timestamp()
        WHERE id = $1 AND status = 'sending' AND claimed_at = $2 AND twilio_sid IS NULL
        RETURNING true
        """,
        message_id, claimed_at, float(reconcile_after_s),
    ))


async def mark_failed(conn: Conn, message_id: int, claimed_at: datetime | None, code: int | None, text: str) -> bool:
    """`failed` with Twilio's code and message (this claim only, when `claimed_at` given)."""
    return bool(await conn.fetchval(
        """
        UPDATE messages SET status = 'failed', error_code = $3, error_message = $4,
                            next_attempt_at = NULL, updated_at = clock_timestamp()
        WHERE id = $1 AND status IN ('queued', 'sending') AND twilio_sid IS NULL
          AND ($2::timestamptz IS NULL OR claimed_at = $2)
        RETURNING true
        """,
        message_id, claimed_at, code, text,
    ))


# ---- the sweeper ---------------------------------------------------------------------------


async def touch_stale_queued(conn: Conn, stale_s: float, limit: int) -> list[int]:
    """Ids of `queued` rows more than `stale_s` past due, marked due now so one pass per
    `stale_s` re-enqueues each at most once."""
    rows = await conn.fetch(
        """
        UPDATE messages SET next_attempt_at = now(), updated_at = clock_timestamp()
        WHERE id IN (
            SELECT id FROM messages
            WHERE status = 'queued'
              AND coalesce(next_attempt_at, created_at) < now() - make_interval(secs => $1)
            ORDER BY coalesce(next_attempt_at, created_at)
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
          AND status = 'queued'
        RETURNING id
        """,
        float(stale_s), limit,
    )
    return [r["id"] for r in rows]


async def stale_sending(conn: Conn, in_flight_s: float, limit: int) -> list[asyncpg.Record]:
    """`sending` rows due for reconciliation: marked ambiguous and past their wait, or
    claimed longer ago than any Twilio call can still be in flight (a dead worker)."""
    return await conn.fetch(
        """
        SELECT m.id, m.firm_id, m.body, m.claimed_at, m.attempts, m.twilio_sid,
               c.phone_e164 AS to_phone, f.sms_number AS from_phone
        FROM messages m
        JOIN conversations c ON c.id = m.conversation_id
        JOIN firms f ON f.id = m.firm_id
        WHERE m.status = 'sending'
          AND coalesce(m.next_attempt_at, m.claimed_at + make_interval(secs => $1)) <= now()
        ORDER BY m.claimed_at
        LIMIT $2
        """,
        float(in_flight_s), limit,
    )


async def known_sids(conn: Conn, sids: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT twilio_sid FROM messages WHERE twilio_sid = ANY($1::text[])", sids)
    return {r["twilio_sid"] for r in rows}


async def adopt_sid(conn: Conn, message_id: int, claimed_at: datetime, sid: str, twilio_status: str | None) -> bool:
    """The sweeper found this claim's message at Twilio: `sent` with its sid."""
    return bool(await conn.fetchval(
        """
        UPDATE messages SET twilio_sid = $3, status = 'sent',
                            twilio_status = coalesce(twilio_status, $4),
                            next_attempt_at = NULL, updated_at = clock_timestamp()
        WHERE id = $1 AND status = 'sending' AND claimed_at = $2 AND twilio_sid IS NULL
        RETURNING true
        """,
        message_id, claimed_at, sid, twilio_status,
    ))


async def settle_sending_with_sid(conn: Conn, message_id: int, claimed_at: datetime) -> bool:
    """A `sending` row that already has a sid (a callback stored it): it is `sent`."""
    return bool(await conn.fetchval(
        """
        UPDATE messages SET status = 'sent', next_attempt_at = NULL, updated_at = clock_timestamp()
        WHERE id = $1 AND status = 'sending' AND claimed_at = $2 AND twilio_sid IS NOT NULL
        RETURNING true
        """,
        message_id, claimed_at,
    ))


async def return_to_queued(conn: Conn, message_id: int, claimed_at: datetime) -> bool:
    """Not at Twilio: back to `queued`, due now."""
    return bool(await conn.fetchval(
        """
        UPDATE messages SET status = 'queued', next_attempt_at = now(), updated_at = clock_timestamp()
        WHERE id = $1 AND status = 'sending' AND claimed_at = $2 AND twilio_sid IS NULL
        RETURNING true
        """,
        message_id, claimed_at,
    ))

