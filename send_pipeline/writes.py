"""The send path's writes with their change-feed events, each in one transaction.

Shared by the product (service.py on the web, sending.py on the worker) and the floor
bench, so the floor always pays for the same event writes as the send path.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from conversations import feed
from send_pipeline import queries
from shared.segments import count_segments


async def store_queued_message(conn: Any, message_id: int, firm_id: int, conversation_id: int, body: str,
                               user: str, *, send_at: Any = None, cancel_on_reply: bool = False) -> Any:
    """The message row `queued` (or `scheduled`, with `send_at`), the conversation bumped,
    and their `message.created` and `conversation.updated` events, in one transaction
    (the floor bench runs this too)."""
    async with conn.transaction():
        stored = await queries.insert_queued_message(
            conn, message_id, firm_id, conversation_id, body, user, count_segments(body),
            send_at=send_at, cancel_on_reply=cancel_on_reply)
        await feed.message_changed(conn, message_id, "message.created")
    return stored


async def claim_with_event(pool: asyncpg.Pool, message_id: int,
                           main_account_sid: str | None = None) -> asyncpg.Record | None:
    """The claim (`sending`, or `blocked` by the re-check) and its `message.status` event,
    in one transaction (the floor bench runs this too)."""
    async with pool.acquire() as conn, conn.transaction():
        claim = await queries.claim_message(conn, message_id, main_account_sid)
        if claim is not None:
            await feed.message_changed(conn, message_id)
    return claim


async def store_sent_with_event(pool: asyncpg.Pool, message_id: int, sid: str, twilio_status: str,
                                segments: int | None, validity_period_s: int | None = None,
                                from_number: str | None = None) -> asyncpg.Record | None:
    """Twilio's sid and `sent`, with the `message.status` event, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        stored = await queries.store_sent(conn, message_id, sid, twilio_status, segments, validity_period_s,
                                          from_number)
        if stored is not None:
            await feed.message_changed(conn, message_id)
    return stored
