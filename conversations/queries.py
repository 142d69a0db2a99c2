"""SQL of conversations: one per (firm, phone), linked to the newest signup with that phone,
and the row the conversation shape is built from."""

from __future__ import annotations

from typing import Sequence

import asyncpg

from conversations.shapes import PREVIEW_CHARS

Conn = asyncpg.Connection | asyncpg.Pool

# a `messages` row as `shapes.message_json` reads it
MESSAGE_COLUMNS = """
    id, firm_id, conversation_id, direction, body, sent_by, status, twilio_status,
    blocked_reason, twilio_sid, error_code, error_message, segments, attempts, claimed_at,
    next_attempt_at, created_at, updated_at, received_at, send_at, cancel_on_reply, validity_period_s,
    from_number
"""

# The newest signup of the firm with this phone (by signed_up_at, then id).
NEWEST_LEAD_SQL = """
    SELECT id FROM leads
    WHERE firm_id = $1 AND phone_e164 = $2
    ORDER BY signed_up_at DESC, id DESC
    LIMIT 1
"""


async def upsert_conversation(conn: asyncpg.Connection, firm_id: int, phone_e164: str) -> tuple[int, bool]:
    """The conversation id for (firm, phone) and whether it was created now.

    Race-free: concurrent callers converge on one row through the unique key.
    """
    row = await conn.fetchrow(
        f"""
        INSERT INTO conversations (firm_id, phone_e164, lead_id)
        VALUES ($1, $2, ({NEWEST_LEAD_SQL}))
        ON CONFLICT (firm_id, phone_e164) DO UPDATE
            SET lead_id = COALESCE(EXCLUDED.lead_id, conversations.lead_id)
        RETURNING id, (xmax = 0) AS created
        """,
        firm_id, phone_e164,
    )
    return row["id"], row["created"]


async def bump_conversation(conn: asyncpg.Connection, conversation_id: int) -> None:
    """Move the conversation to the top of the list (last activity now)."""
    await conn.execute(
        "UPDATE conversations SET last_message_at = greatest(coalesce(last_message_at, '-infinity'), clock_timestamp()) WHERE id = $1",
        conversation_id,
    )


# The conversation of (firm, phone) points at the newest signup with that phone, by
# signed_up_at then id (index leads_firm_phone_newest).
_NEWEST_LEAD_OF_ROW = """
    SELECT l.id FROM leads l
    WHERE l.firm_id = c.firm_id AND l.phone_e164 = c.phone_e164
    ORDER BY l.signed_up_at DESC, l.id DESC
    LIMIT 1
"""


async def lock_conversation(conn: asyncpg.Connection, firm_id: int, phone_e164: str) -> None:
    """Lock the phone's conversation (if any) for the transaction: two signups of one phone
    validated at once then relink one after the other, the later seeing the earlier."""
    await conn.execute(
        "SELECT 1 FROM conversations WHERE firm_id = $1 AND phone_e164 = $2 FOR UPDATE", firm_id, phone_e164,
    )


async def lock_conversations(conn: asyncpg.Connection, firm_ids: Sequence[int], phones: Sequence[str]) -> None:
    """`lock_conversation` for several (firm, phone) pairs, in (firm, phone) order."""
    await conn.execute(
        """
        SELECT 1 FROM conversations c JOIN unnest($1::bigint[], $2::text[]) AS u(firm_id, phone)
            ON c.firm_id = u.firm_id AND c.phone_e164 = u.phone
        ORDER BY c.firm_id, c.phone_e164
        FOR UPDATE OF c
        """,
        list(firm_ids), list(phones),
    )


async def relink_conversations_of_pairs(conn: Conn, firm_ids: Sequence[int], phones: Sequence[str]) -> list[asyncpg.Record]:
    """`relink_conversations` for (firm, phone) pairs of several firms; (firm_id, id) of
    each conversation that now points at another signup."""
    return await conn.fetch(
        f"""
        UPDATE conversations c SET lead_id = ({_NEWEST_LEAD_OF_ROW})
        FROM unnest($1::bigint[], $2::text[]) AS u(firm_id, phone)
        WHERE c.firm_id = u.firm_id AND c.phone_e164 = u.phone
          AND c.lead_id IS DISTINCT FROM ({_NEWEST_LEAD_OF_ROW})
        RETURNING c.firm_id, c.id
        """,
        list(firm_ids), list(phones),
    )


async def conversations_of_phones(conn: Conn, phones: Sequence[str]) -> list[asyncpg.Record]:
    """`conversations_of_phone` in every firm for several phones: (firm_id, id), in that order."""
    return await conn.fetch(
        "SELECT firm_id, id FROM conversations WHERE phone_e164 = ANY($1::text[]) ORDER BY firm_id, id",
        list(phones),
    )


async def relink_conversations(conn: Conn, firm_id: int, phones: Sequence[str]) -> int:
    """Point each of these phones' conversations (if any) at the phone's newest signup."""
    result = await conn.execute(
        f"""
        UPDATE conversations c SET lead_id = ({_NEWEST_LEAD_OF_ROW})
        WHERE c.firm_id = $1 AND c.phone_e164 = ANY($2::text[])
          AND c.lead_id IS DISTINCT FROM ({_NEWEST_LEAD_OF_ROW})
        """,
        firm_id, list(phones),
    )
    return int(result.split()[-1])


# One row per conversation with everything the list shows: the newest signup's name, the
# sendable decision (the lead's phone status, or 'valid' for an unknown sender), the line
# type and the last message (LATERAL over messages_thread: no N+1).
_CONVERSATION_SELECT = f"""
SELECT c.id, c.lead_id, c.phone_e164, c.last_message_at, c.created_at,
       COALESCE(c.last_message_at, c.created_at) AS activity,
       l.name, l.phone_status,
       send_block_code(c.firm_id, COALESCE(l.phone_status, 'valid'), c.phone_e164) AS block_code,
       pl.line_type,
       m.id AS m_id, m.direction AS m_direction, left(m.body, {PREVIEW_CHARS + 1}) AS m_body,
       m.status AS m_status, m.created_at AS m_created_at
FROM conversations c
LEFT JOIN leads l ON l.id = c.lead_id AND l.firm_id = c.firm_id
LEFT JOIN phone_lines pl ON pl.phone_e164 = c.phone_e164
LEFT JOIN LATERAL (
    SELECT id, direction, body, status, created_at FROM messages
    WHERE messages.conversation_id = c.id
    ORDER BY created_at DESC, id DESC
    LIMIT 1) AS m ON true
"""

_RECENT_ORDER = "ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC"




def _search(n: int) -> str:
    """The list's search (`?q=`): a case-insensitive substring of the name of the
    conversation's lead (${n}, a LIKE pattern: text mode) or of its phone's digits (${n+1}:
    digits mode); both NULL, no filter. It filters along the `conversations_recent` order,
    so a page stops reading as soon as it has its rows."""
    return f"""
    AND (${n}::text IS NULL OR lower(l.name) LIKE lower(${n}))
    AND (${n + 1}::text IS NULL OR substr(c.phone_e164, 2) LIKE ${n + 1})"""


async def list_conversations(conn: Conn, firm_id: int, limit: int, *, name_pattern: str | None = None,
                             digits_pattern: str | None = None) -> list[asyncpg.Record]:
    """The firm's conversations with a message (one joins the list with its first), most
    recent activity first (first page), optionally searched."""
    return await conn.fetch(
        f"""{_CONVERSATION_SELECT}
            WHERE c.firm_id = $1 AND c.last_message_at IS NOT NULL {_search(3)}
            {_RECENT_ORDER} LIMIT $2""",
        firm_id, limit, name_pattern, digits_pattern,
    )


async def list_conversations_before(conn: Conn, firm_id: int, limit: int, activity, conv_id: int, *,
                                    name_pattern: str | None = None,
                                    digits_pattern: str | None = None) -> list[asyncpg.Record]:
    """The page after the cursor (activity, id): keyset on the `conversations_recent` index."""
    return await conn.fetch(
        f"""{_CONVERSATION_SELECT}
            WHERE c.firm_id = $1 AND c.last_message_at IS NOT NULL
              AND (COALESCE(c.last_message_at, c.created_at), c.id) < ($3, $4) {_search(5)}
            {_RECENT_ORDER} LIMIT $2""",
        firm_id, limit, activity, conv_id, name_pattern, digits_pattern,
    )


async def fetch_conversation(conn: Conn, firm_id: int, conv_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{_CONVERSATION_SELECT} WHERE c.id = $2 AND c.firm_id = $1", firm_id, conv_id)


async def fetch_conversations(conn: Conn, pairs: Sequence[tuple[int, int]]) -> list[tuple[int, asyncpg.Record]]:
    """`fetch_conversation` for several (firm_id, conversation_id) pairs, any firms, in one
    statement: (firm_id, row) in (firm, id) order."""
    firm_of = {conv_id: firm_id for firm_id, conv_id in pairs}
    rows = await conn.fetch(
        f"{_CONVERSATION_SELECT} WHERE c.id = ANY($1::bigint[]) AND c.firm_id = ANY($2::bigint[])",
        sorted(firm_of), sorted({f for f, _ in pairs}))
    return sorted(((firm_of[r["id"]], r) for r in rows), key=lambda fr: (fr[0], fr[1]["id"]))


async def message_rows(conn: Conn, message_ids: Sequence[int]) -> list[asyncpg.Record]:
    """`message_row` for several messages, in id order (one statement)."""
    return await conn.fetch(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1::bigint[]) ORDER BY id",
                            list(message_ids))


async def message_row(conn: Conn, message_id: int) -> asyncpg.Record | None:
    """One message row by id (any firm: for the caller that just changed it)."""
    return await conn.fetchrow(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1", message_id)


async def conversations_of_phone(conn: Conn, phone_e164: str, firm_id: int | None = None) -> list[asyncpg.Record]:
    """(firm_id, id) of the phone's conversations: in one firm, or in every firm (a fact
    about the number, such as its line type, changes every firm's), in firm-id order."""
    return await conn.fetch(
        """
        SELECT firm_id, id FROM conversations
        WHERE phone_e164 = $1 AND ($2::bigint IS NULL OR firm_id = $2)
        ORDER BY firm_id, id
        """,
        phone_e164, firm_id,
    )


async def ids_for_phones(conn: Conn, firm_id: int, phones: Sequence[str]) -> list[int]:
    """The ids of the firm's conversations with these phones (a batch: one statement)."""
    rows = await conn.fetch(
        "SELECT id FROM conversations WHERE firm_id = $1 AND phone_e164 = ANY($2::text[]) ORDER BY id",
        firm_id, list(phones),
    )
    return [r["id"] for r in rows]


async def ids_for_lead(conn: Conn, firm_id: int, lead_id: int) -> list[int]:
    """The ids of the firm's conversations linked to this signup (index conversations_lead)."""
    rows = await conn.fetch(
        "SELECT id FROM conversations WHERE firm_id = $1 AND lead_id = $2 ORDER BY id", firm_id, lead_id,
    )
    return [r["id"] for r in rows]


# a lead as `shapes.lead_json` reads it: the signup, its cached line, the sendable code
LEAD_SHAPE_SQL = """
    SELECT l.id AS lead_id, l.firm_id, l.external_id, l.name, l.email, l.event, l.phone_raw, l.phone_e164,
           l.phone_status, l.phone_error, l.signed_up_at, l.created_at, l.timezone, l.postal_code,
           pl.line_type, pl.carrier, pl.checked_at AS line_checked_at,
           send_block_code(l.firm_id, l.phone_status, l.phone_e164) AS code
    FROM leads l
    LEFT JOIN phone_lines pl ON pl.phone_e164 = l.phone_e164
"""


async def lead_for_firm(conn: Conn, firm_id: int, lead_id: int) -> asyncpg.Record | None:
    """One signup of the firm, with its cached line and the sendable decision's code."""
    return await conn.fetchrow(LEAD_SHAPE_SQL + " WHERE l.id = $1 AND l.firm_id = $2", lead_id, firm_id)


async def leads_of_phone(conn: Conn, phone_e164: str, firm_id: int | None = None) -> list[asyncpg.Record]:
    """The phone's signups in one firm, or in every firm, in lead-shape rows, in (firm, id) order."""
    return await conn.fetch(
        LEAD_SHAPE_SQL + " WHERE l.phone_e164 = $1 AND ($2::bigint IS NULL OR l.firm_id = $2) ORDER BY l.firm_id, l.id",
        phone_e164, firm_id,
    )


async def leads_by_ids(conn: Conn, lead_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Lead-shape rows of these signups (any firms: the caller just changed them), in id order."""
    return await conn.fetch(LEAD_SHAPE_SQL + " WHERE l.id = ANY($1::bigint[]) ORDER BY l.id", list(lead_ids))
