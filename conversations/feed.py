"""The change feed's messages and conversations: each event's `data` built by the one
function of its shape, in the caller's transaction.

Call these after the change (in the same transaction); the event is numbered at commit.
Each returns the firm ids it wrote events for, so the caller can `events.wake` them once
its transaction has committed.
"""

from __future__ import annotations

from typing import Iterable

import asyncpg

import events
from conversations import queries
from conversations.shapes import conversation_json, lead_json, message_json


async def message_changed(conn: asyncpg.Connection, message_id: int, event_type: str = "message.status", *,
                          with_conversation: bool = True) -> set[int]:
    """`message.created` / `message.status` / `message.received` for the message and, as
    its last message or activity changed, `conversation.updated` for its conversation."""
    row = await queries.message_row(conn, message_id)
    if row is None:
        return set()
    items = [(row["firm_id"], event_type, message_json(row))]
    if with_conversation:
        conversation = await queries.fetch_conversation(conn, row["firm_id"], row["conversation_id"])
        if conversation is not None:
            items.append((row["firm_id"], "conversation.updated", conversation_json(conversation)))
    await events.record_many(conn, items)
    return {row["firm_id"]}


async def messages_changed(conn: asyncpg.Connection, message_ids: Iterable[int],
                           conversations: Iterable[tuple[int, int]] = (),
                           event_type: str = "message.status") -> set[int]:
    """`message_changed` for a batch, in two statements of reads and one of writes (none
    when there is nothing to say):
    `event_type` for each message (as it now is, in id order), then `conversation.updated`
    for each (firm_id, conversation_id) given (in firm, id order)."""
    ids = sorted(set(message_ids))
    rows = await queries.message_rows(conn, ids) if ids else []
    items = [(row["firm_id"], event_type, message_json(row)) for row in rows]
    wanted = sorted(set(conversations))
    if wanted:
        for firm_id, row in await queries.fetch_conversations(conn, wanted):
            items.append((firm_id, "conversation.updated", conversation_json(row)))
    await events.record_many(conn, items)
    return {firm_id for firm_id, _, _ in items}


async def conversations_changed(conn: asyncpg.Connection, firm_id: int, conversation_ids: Iterable[int]) -> set[int]:
    """`conversation.updated` for each of these conversations of the firm."""
    items = []
    for conversation_id in sorted(set(conversation_ids)):
        row = await queries.fetch_conversation(conn, firm_id, conversation_id)
        if row is not None:
            items.append((firm_id, "conversation.updated", conversation_json(row)))
    await events.record_many(conn, items)
    return {firm_id} if items else set()


async def phone_changed(conn: asyncpg.Connection, phone_e164: str, firm_id: int | None = None, *,
                        leads: bool = True) -> set[int]:
    """A fact about the phone changed: consent, a block or a review (in the firm), or its
    line type or validity (in every firm when `firm_id` is None). Writes
    `conversation.updated` for its conversations and, as the lead shape carries the line and
    the sendable decision, `lead.updated` for each of its signups (`leads=False` when the
    caller has written the one lead that changed itself). Firms in firm-id order."""
    by_firm: dict[int, list[tuple[str, dict]]] = {}
    for row in await queries.conversations_of_phone(conn, phone_e164, firm_id):
        conversation = await queries.fetch_conversation(conn, row["firm_id"], row["id"])
        if conversation is not None:
            by_firm.setdefault(row["firm_id"], []).append(("conversation.updated", conversation_json(conversation)))
    if leads:
        for lead in await queries.leads_of_phone(conn, phone_e164, firm_id):
            by_firm.setdefault(lead["firm_id"], []).append(("lead.updated", lead_json(lead)))
    await events.record_many(conn, [(fid, kind, data) for fid in sorted(by_firm) for kind, data in by_firm[fid]])
    return set(by_firm)
