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

# What the quiet-hours decision needs about a conversation `c` (joined to its firm `f`
# and its newest signup `l`): the firm's window and zone, where the lead is, and when
# the lead last texted (the reply grace). See quiet_hours.decide_for.
QUIET_CONTEXT = """
    f.quiet_hours, f.timezone AS firm_timezone, f.sms_number AS firm_number,
    l.timezone AS lead_timezone, l.postal_code AS lead_postal_code, c.phone_e164 AS lead_phone,
    (SELECT i.received_at FROM messages i
     WHERE i.conversation_id = c.id AND i.direction = 'in'
     ORDER BY i.received_at DESC LIMIT 1) AS last_inbound_at
"""
QUIET_JOINS = """
    JOIN firms f ON f.id = c.firm_id
    LEFT JOIN leads l ON l.id = c.lead_id AND l.firm_id = c.firm_id
"""

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


async def thread_after(conn: Conn, conversation_id: int, after_id: int | None, limit: int) -> list[asyncpg.Record]:
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


async def thread_late(conn: Conn, firm_id: int, conversation_id: int, last_id: int, seen_seq: int,
                      limit: int) -> list[asyncpg.Record]:
    """The thread's messages filed after the firm's event `seen_seq` that sort at or before
    the message `last_id` (replies Twilio timed earlier than a send filed before them), in
    feed order, each with the number of the event that created it (`late_seq`)."""
    return await conn.fetch(
        f"""
        SELECT {MESSAGE_COLUMNS}, late.seq AS late_seq
        FROM (SELECT (data->>'id')::bigint AS message_id, seq FROM events
              WHERE firm_id = $1 AND seq > $4
                AND type IN ('message.created', 'message.received')
                AND (data->>'conversation_id')::bigint = $2) late
        JOIN messages ON messages.id = late.message_id AND messages.conversation_id = $2
        WHERE (messages.created_at, messages.id) <=
              (SELECT created_at, id FROM messages WHERE id = $3 AND conversation_id = $2)
        ORDER BY late.seq
        LIMIT $5
        """,
        firm_id, conversation_id, last_id, seen_seq, limit,
    )


# ---- the send request (web) --------------------------------------------------------------


async def conversation_for_send(conn: Conn, firm_id: int, conversation_id: int) -> asyncpg.Record | None:
    """The conversation's sendable code and, when sendable, a fresh message id.

    One round trip: the id is allocated here (before the duplicate window is taken, which
    holds it) only for a sendable conversation of this firm.
    """
    return await conn.fetchrow(
        f"""
        SELECT b.code,
               CASE WHEN b.code IS NULL THEN nextval('messages_id_seq') END AS new_id,
               {QUIET_CONTEXT}
        FROM conversations c
        {QUIET_JOINS}
        CROSS JOIN LATERAL (SELECT send_block_code(c.firm_id, 'valid', c.phone_e164) AS code) b
        WHERE c.id = $1 AND c.firm_id = $2
        """,
        conversation_id, firm_id,
    )


async def quiet_context(conn: Conn, firm_id: int, conversation_id: int) -> asyncpg.Record | None:
    """The quiet-hours inputs of one conversation of the firm (thread open's notice)."""
    return await conn.fetchrow(
        f"SELECT {QUIET_CONTEXT} FROM conversations c {QUIET_JOINS} WHERE c.id = $1 AND c.firm_id = $2",
        conversation_id, firm_id,
    )


async def insert_queued_message(conn: Conn, message_id: int, firm_id: int, conversation_id: int,
                                body: str, sent_by: str, segments: int, send_at: datetime | None = None,
                                cancel_on_reply: bool = False) -> asyncpg.Record:
    """Insert the message (`queued`, or `scheduled` when it has a send_at) and bump the
    conversation, as one statement (atomic).

    Change feed: the `message.created` event of a send belongs in this statement's
    transaction."""
    return await conn.fetchrow(
        f"""
        WITH m AS (
            INSERT INTO messages (id, firm_id, conversation_id, direction, body, sent_by, status, segments,
                                  send_at, cancel_on_reply)
            VALUES ($1, $2, $3, 'out', $4, $5, CASE WHEN $7::timestamptz IS NULL THEN 'queued' ELSE 'scheduled' END,
                    $6, $7, $8)
            RETURNING {MESSAGE_COLUMNS}
        ), bumped AS (
            UPDATE conversations
            SET last_message_at = greatest(coalesce(last_message_at, '-infinity'), clock_timestamp())
            WHERE id = $3
        )
        SELECT * FROM m
        """,
        message_id, firm_id, conversation_id, body, sent_by, segments, send_at, cancel_on_reply,
    )


# ---- the worker ----------------------------------------------------------------------------

async def claim_message(conn: Conn, message_id: int, main_account_sid: str | None = None) -> asyncpg.Record | None:
    """Take a due `queued` message: `sending` when sendable, else `blocked` with the code.

    None when the row is not ours to take (already claimed, sent, final, not yet due, or
    its firm's sending is paused: its firm, or the Twilio account it sends with). The
    sendable re-check is in the same statement, so a STOP committed before the claim
    blocks the send.

    The sender is chosen here, when the message is released to a worker: a Messaging
    Service firm sends through its service (Twilio picks the number); otherwise the
    conversation's sticky number while it is still one of the firm's, else the firm's
    default number. The conversation remembers the number used.
    """
    return await conn.fetchrow(
        f"""
        WITH claimed AS (
            UPDATE messages AS m
            SET status = CASE WHEN b.code IS NULL THEN 'sending' ELSE 'blocked' END,
                blocked_reason = b.code,
                claimed_at = CASE WHEN b.code IS NULL THEN now() ELSE m.claimed_at END,
                attempts = m.attempts + CASE WHEN b.code IS NULL THEN 1 ELSE 0 END,
                from_number = CASE WHEN b.code IS NULL THEN s.from_number ELSE m.from_number END,
                messaging_service_sid = CASE WHEN b.code IS NULL THEN f.messaging_service_sid
                                             ELSE m.messaging_service_sid END,
                next_attempt_at = NULL,
                updated_at = clock_timestamp()
            FROM conversations AS c
            {QUIET_JOINS}
            CROSS JOIN LATERAL (SELECT send_block_code(c.firm_id, 'valid', c.phone_e164) AS code) AS b
            CROSS JOIN LATERAL (
                SELECT CASE
                    WHEN f.messaging_service_sid IS NOT NULL THEN NULL
                    WHEN c.from_number IS NOT NULL AND EXISTS (
                        SELECT 1 FROM firm_numbers n
                        WHERE n.firm_id = f.id AND n.number = c.from_number AND n.removed_at IS NULL)
                    THEN c.from_number
                    ELSE f.sms_number END AS from_number) AS s
            WHERE m.id = $1 AND c.id = m.conversation_id
              AND m.status = 'queued' AND m.direction = 'out' AND m.twilio_sid IS NULL
              AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= now())
              AND f.paused_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM twilio_account_pauses p
                              WHERE p.account_sid = coalesce(f.twilio_account_sid, $2::text))
            RETURNING m.id, m.firm_id, m.conversation_id, m.status, m.blocked_reason, m.body, m.attempts,
                      m.claimed_at, m.created_at, m.send_at, c.phone_e164 AS to_phone, m.from_number AS from_phone,
                      m.messaging_service_sid, f.twilio_account_sid, f.twilio_auth_token_enc,
                      {QUIET_CONTEXT}
        ), sticky AS (
            UPDATE conversations AS c SET from_number = claimed.from_phone
            FROM claimed
            WHERE c.id = claimed.conversation_id AND claimed.status = 'sending'
              AND claimed.from_phone IS NOT NULL AND c.from_number IS DISTINCT FROM claimed.from_phone
        )
        SELECT * FROM claimed
        """,
        message_id, main_account_sid,
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


async def block_claim(conn: Conn, message_id: int, claimed_at: datetime, reason: str) -> bool:
    """A claimed message that must not go out after all (the lead's window closed before
    the claim): `blocked` with the reason, Twilio never called.

    Change feed: a `message.status` event belongs in this statement's transaction."""
    return bool(await conn.fetchval(
        """
        UPDATE messages SET status = 'blocked', blocked_reason = $3, next_attempt_at = NULL,
                            updated_at = clock_timestamp()
        WHERE id = $1 AND status = 'sending' AND claimed_at = $2 AND twilio_sid IS NULL
        RETURNING true
        """,
        message_id, claimed_at, reason,
    ))


async def store_sent(conn: Conn, message_id: int, sid: str, twilio_status: str, segments: int | None,
                     validity_period_s: int | None = None, from_number: str | None = None) -> asyncpg.Record | None:
    """Record Twilio's sid. Rank-aware: a status callback that got here first (delivered,
    undelivered...) keeps its status and its `twilio_status`."""
    return await conn.fetchrow(
        """
        UPDATE messages SET
            validity_period_s = coalesce($5, validity_period_s),
            twilio_sid = coalesce(twilio_sid, $2),
            twilio_status = CASE WHEN status IN ('queued', 'sending') OR twilio_status IS NULL
                                 THEN $3 ELSE twilio_status END,
            status = CASE WHEN status IN ('queued', 'sending') THEN 'sent' ELSE status END,
            segments = coalesce($4, segments),
            from_number = coalesce(from_number, $6),
            next_attempt_at = NULL,
            updated_at = clock_timestamp()
        WHERE id = $1
        RETURNING status, twilio_sid
        """,
        message_id, sid, twilio_status, segments, validity_period_s, from_number,
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


async def touch_stale_queued(conn: Conn, stale_s: float, limit: int, main_account_sid: str | None = None) -> list[int]:
    """Ids of `queued` rows more than `stale_s` past due, marked due now so one pass per
    `stale_s` re-enqueues each at most once. A paused firm's rows (or those of a paused
    account) wait: they go out on the first pass after the pause is lifted."""
    rows = await conn.fetch(
        """
        UPDATE messages SET next_attempt_at = now(), updated_at = clock_timestamp()
        WHERE id IN (
            SELECT m.id FROM messages m
            WHERE m.status = 'queued'
              AND coalesce(m.next_attempt_at, m.created_at) < now() - make_interval(secs => $1)
              AND NOT EXISTS (
                  SELECT 1 FROM firms f WHERE f.id = m.firm_id AND (f.paused_at IS NOT NULL OR EXISTS (
                      SELECT 1 FROM twilio_account_pauses p
                      WHERE p.account_sid = coalesce(f.twilio_account_sid, $3::text))))
            ORDER BY coalesce(m.next_attempt_at, m.created_at)
            LIMIT $2
            FOR UPDATE OF m SKIP LOCKED)
          AND status = 'queued'
        RETURNING id
        """,
        float(stale_s), limit, main_account_sid,
    )
    return [r["id"] for r in rows]


async def stale_sending(conn: Conn, in_flight_s: float, limit: int) -> list[asyncpg.Record]:
    """`sending` rows due for reconciliation: marked ambiguous and past their wait, or
    claimed longer ago than any Twilio call can still be in flight (a dead worker)."""
    return await conn.fetch(
        """
        SELECT m.id, m.firm_id, m.body, m.claimed_at, m.attempts, m.twilio_sid,
               c.phone_e164 AS to_phone, m.messaging_service_sid,
               -- a row claimed before senders were recorded went from the firm's number then
               coalesce(m.from_number, CASE WHEN m.messaging_service_sid IS NULL THEN f.sms_number END) AS from_phone,
               f.twilio_account_sid, f.twilio_auth_token_enc
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


async def adopt_sid(conn: Conn, message_id: int, claimed_at: datetime, sid: str, twilio_status: str | None,
                    from_number: str | None = None) -> bool:
    """The sweeper found this claim's message at Twilio: `sent` with its sid (and, for a
    Messaging Service send, the number Twilio chose)."""
    return bool(await conn.fetchval(
        """
        UPDATE messages SET twilio_sid = $3, status = 'sent',
                            twilio_status = coalesce(twilio_status, $4),
                            from_number = coalesce(from_number, $5),
                            next_attempt_at = NULL, updated_at = clock_timestamp()
        WHERE id = $1 AND status = 'sending' AND claimed_at = $2 AND twilio_sid IS NULL
        RETURNING true
        """,
        message_id, claimed_at, sid, twilio_status, from_number,
    ))


async def callback_sid(conn: Conn, message_id: int) -> str | None:
    """The sid named by a status callback stored for this message (`?m=`) and not yet
    applied: Twilio has the message even when its list does not show it yet. (An applied
    callback has stored its sid on the message already.) Reads the unprocessed inbox
    rows only, through their partial index."""
    return await conn.fetchval(
        """
        SELECT message_sid FROM twilio_inbox
        WHERE processed_at IS NULL AND kind = 'status' AND message_id = $1
        ORDER BY received_at, id
        LIMIT 1
        """,
        message_id,
    )


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



# ---- scheduled sends -----------------------------------------------------------------------


async def due_scheduled(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """`scheduled` messages whose send_at has come, locked for this transaction (another
    sweeper skips them), with their quiet-hours inputs."""
    return await conn.fetch(
        f"""
        SELECT m.id, m.firm_id, m.send_at, {QUIET_CONTEXT}
        FROM messages m
        JOIN conversations c ON c.id = m.conversation_id
        {QUIET_JOINS}
        WHERE m.status = 'scheduled' AND m.send_at <= now()
        ORDER BY m.send_at
        LIMIT $1
        FOR UPDATE OF m SKIP LOCKED
        """,
        limit,
    )


async def release_scheduled(conn: Conn, message_ids: list[int]) -> list[int]:
    """Due scheduled messages become `queued`, due now (so the stale-queued sweep measures
    from the release, not from when they were scheduled).

    Change feed: their `message.status` events belong in this statement's transaction."""
    rows = await conn.fetch(
        """
        UPDATE messages SET status = 'queued', next_attempt_at = now(), updated_at = clock_timestamp()
        WHERE id = ANY($1::bigint[]) AND status = 'scheduled'
        RETURNING id
        """,
        message_ids,
    )
    return [r["id"] for r in rows]


async def block_scheduled(conn: Conn, message_ids: list[int], reason: str) -> list[int]:
    """Due scheduled messages that may not go out (quiet hours when due): `blocked`.

    Change feed: their `message.status` events belong in this statement's transaction."""
    rows = await conn.fetch(
        """
        UPDATE messages SET status = 'blocked', blocked_reason = $2, updated_at = clock_timestamp()
        WHERE id = ANY($1::bigint[]) AND status = 'scheduled'
        RETURNING id
        """,
        message_ids, reason,
    )
    return [r["id"] for r in rows]


async def cancel_scheduled(conn: Conn, firm_id: int, message_id: int) -> asyncpg.Record | None:
    """Staff cancel a `scheduled` message of the firm: `canceled` (None when it is not
    scheduled, or not the firm's).

    Change feed: its `message.status` event belongs in this statement's transaction."""
    return await conn.fetchrow(
        f"""
        UPDATE messages SET status = 'canceled', updated_at = clock_timestamp()
        WHERE id = $1 AND firm_id = $2 AND status = 'scheduled'
        RETURNING {MESSAGE_COLUMNS}
        """,
        message_id, firm_id,
    )


async def cancel_on_reply(conn: Conn, firm_id: int, phone_e164: str) -> list[int]:
    """The lead replied: every `scheduled` message of that conversation created with
    cancel_on_reply becomes `canceled`. Runs in the inbound webhook's transaction.

    Change feed: their `message.status` events belong in this statement's transaction."""
    rows = await conn.fetch(
        """
        UPDATE messages m SET status = 'canceled', updated_at = clock_timestamp()
        FROM conversations c
        WHERE c.firm_id = $1 AND c.phone_e164 = $2 AND m.conversation_id = c.id
          AND m.status = 'scheduled' AND m.cancel_on_reply
        RETURNING m.id
        """,
        firm_id, phone_e164,
    )
    return [r["id"] for r in rows]
