"""One conversation per (firm, phone), linked to the newest signup with that phone."""

from __future__ import annotations

import asyncpg

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

