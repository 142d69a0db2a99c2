"""Intake: store a signup, validate its phone, hand a valid phone to Lookup.

A signup is stored as it came (`pending`, raw phone kept) before anything is enqueued;
`validate_lead` then normalises the phone in the firm's default region and records
`valid` (E.164), `missing` or `invalid` with a reason. Both steps are idempotent: a
repeated hook finds the stored signup, a repeated job finds the lead no longer pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import asyncpg
import structlog

import events
from conversations import feed
from conversations import queries as conversation_queries
from intake import queries, validate_batch
from conversations.shapes import lead_json
from intake.validation import UPDATABLE_FIELDS, LeadInput
from lookup import actors as lookup_actors
from shared.broker import enqueue
from shared.db import retrying
from shared.deps import Deps
from shared.phones import check_phone

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Accepted:
    lead_id: int
    phone_status: str
    created: bool  # False: the firm already had this external_id (nothing changed)


async def accept_lead(pool: asyncpg.Pool, firm_id: int, lead: LeadInput, redis: Any = None) -> Accepted:
    """Store the signup unless the firm already has its external_id (a new signup is a
    `lead.updated` event, in the same transaction; `redis` wakes the firm's streams)."""
    for _ in range(3):
        async with pool.acquire() as conn, conn.transaction():
            row = await queries.insert_lead(conn, firm_id, lead)
            if row is not None:
                await record_lead_updated(conn, firm_id, row["id"])
        if row is not None:
            await events.wake(redis, [firm_id])
            return Accepted(row["id"], row["phone_status"], created=True)
        row = await queries.lead_by_external_id(pool, firm_id, lead.external_id)
        if row is not None:
            return Accepted(row["id"], row["phone_status"], created=False)
        # the conflicting signup was deleted in between (DELETE /v1/leads): insert again
    raise RuntimeError("a conflicting lead kept vanishing")


async def lead_for_firm(pool: asyncpg.Pool, firm_id: int, lead_id: int) -> asyncpg.Record | None:
    """One signup of the firm with its line and sendable code; None when not the firm's."""
    return await conversation_queries.lead_for_firm(pool, firm_id, lead_id)


async def firm_region(pool: asyncpg.Pool, firm_id: int) -> str:
    return await queries.firm_region(pool, firm_id) or "US"


async def record_lead_updated(conn: asyncpg.Connection, firm_id: int, lead_id: int) -> None:
    """The feed's `lead.updated` with the lead's shape as it now is (caller's transaction)."""
    row = await conversation_queries.lead_for_firm(conn, firm_id, lead_id)
    if row is not None:
        await events.record(conn, firm_id, "lead.updated", lead_json(row))


@dataclass(frozen=True)
class Verdict:
    status: str  # valid | missing | invalid
    phone_e164: str | None
    error: str | None
    lookup_requested: bool


async def validate_lead(deps: Deps, lead_id: int) -> Verdict | None:
    """Judge a pending lead's phone, keep its conversation on the newest signup, and ask
    Lookup for the line type when no fresh answer is cached. None for an unknown lead.
    (A batch of one: intake/validate_batch.py.)"""
    verdicts = await validate_batch.validate_leads(deps, [lead_id])
    if lead_id not in verdicts.verdicts:
        return None
    status, e164, error = verdicts.verdicts[lead_id]
    await _enqueue_lookups(verdicts.lookups)
    return Verdict(status, e164, error, e164 in verdicts.lookups)


async def validate_leads(deps: Deps, lead_ids: Sequence[int]) -> validate_batch.BatchVerdicts:
    """`validate_lead` for many leads in one transaction (intake/validate_batch.py), then
    their lookups as one `lookup_line_types` job per LOOKUP_BATCH phones."""
    verdicts = await validate_batch.validate_leads(deps, lead_ids)
    await _enqueue_lookups(verdicts.lookups)
    return verdicts


# Phones per `lookup_line_types` job.
LOOKUP_BATCH = 200


async def _enqueue_lookups(phones: list[str]) -> None:
    if len(phones) == 1:
        await enqueue(lookup_actors.lookup_line_type, phones[0])
        return
    for start in range(0, len(phones), LOOKUP_BATCH):
        await enqueue(lookup_actors.lookup_line_types, phones[start:start + LOOKUP_BATCH])


# ---- the CRM changes or deletes a signup -------------------------------------------------

@dataclass(frozen=True)
class Updated:
    lead_id: int
    phone_status: str
    updated: list[str]  # API names of the fields that changed; empty: nothing did
    revalidate: bool    # the phone changed: validate_lead must run


def _diff(row: asyncpg.Record, changes: dict[str, object]) -> dict[str, object]:
    """The changed fields (API names) with their new values."""
    out = {}
    for name, value in changes.items():
        column = UPDATABLE_FIELDS[name]
        current = row[column]
        if name == "phone":
            current = current or None
            value = value or None
            if value is not None and row["phone_e164"] is not None \
                    and check_phone(value, row["default_region"]).e164 == row["phone_e164"]:
                continue  # the same number written another way is no change
        if value != current:
            out[name] = value
    return out


async def update_lead(deps: Deps, firm_id: int, changes: dict[str, object], *,
                      lead_id: int | None = None, external_id: str | None = None) -> Updated | None:
    """Apply the CRM's changes to a stored signup (by id or external_id); None when the
    firm has no such signup.

    A changed phone: the signup is `pending` again (the caller enqueues validate_lead),
    the scheduled messages written to this lead on its old phone are cancelled, and the
    old phone's conversation relinks to its next newest signup (consent stays with the
    old phone). A changed signed_up_at relinks the current phone. The new phone's link
    is made when it is validated. Events (same transaction): `lead.updated`, the
    cancelled messages' `message.status`, `conversation.updated` for every conversation
    linked to the lead before or after. A transaction PostgreSQL aborts to break a
    deadlock (an inbound text filing into the conversation meanwhile) runs again."""
    return await retrying(lambda: _update_lead_once(deps, firm_id, changes, lead_id=lead_id, external_id=external_id))


async def _update_lead_once(deps: Deps, firm_id: int, changes: dict[str, object], *,
                            lead_id: int | None, external_id: str | None) -> Updated | None:
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await queries.lock_lead(conn, firm_id, lead_id=lead_id, external_id=external_id)
        if row is None:
            return None
        changed = _diff(row, changes)
        if not changed:
            return Updated(row["id"], row["phone_status"], [], False)
        phone_changed = "phone" in changed
        old_phone = row["phone_e164"]
        if old_phone is not None:
            await conversation_queries.lock_conversation(conn, firm_id, old_phone)
        linked = set(await conversation_queries.ids_for_lead(conn, firm_id, row["id"]))
        columns = {UPDATABLE_FIELDS[name]: value for name, value in changed.items()}
        updated = await queries.update_lead(conn, row["id"], columns, phone_changed=phone_changed)
        canceled: list[int] = []
        if phone_changed and old_phone is not None:
            canceled = await queries.cancel_scheduled_to_phone(conn, firm_id, row["id"], old_phone)
        if old_phone is not None and (phone_changed or "signed_up_at" in changed):
            await conversation_queries.relink_conversations(conn, firm_id, [old_phone])
            linked |= set(await conversation_queries.ids_for_phones(conn, firm_id, [old_phone]))
        await record_lead_updated(conn, firm_id, row["id"])
        for message_id in canceled:
            await feed.message_changed(conn, message_id, with_conversation=False)
        await feed.conversations_changed(conn, firm_id, linked)
    await events.wake(deps.redis, [firm_id])
    if canceled:
        log.info("scheduled_canceled_phone_changed", lead_id=row["id"], messages=len(canceled))
    log.info("lead_updated", lead_id=row["id"], fields=sorted(changed))
    return Updated(row["id"], updated["phone_status"], sorted(changed), phone_changed)


async def delete_lead(deps: Deps, firm_id: int, lead_id: int) -> bool:
    """The CRM deleted this signup: the row goes, and its phone's conversation relinks to
    the phone's next newest signup (or keeps its history with no lead). False when the
    firm has no such signup. The phone stays remembered in lead_phones for an erasure.
    Events: `lead.deleted` {lead_id} and `conversation.updated` for its conversation.
    A transaction PostgreSQL aborts to break a deadlock runs again: the delete holds the
    lead (FOR UPDATE) and then waits for its conversation, while an inbound text filing
    into that conversation may wait to check the lead it links to."""
    return await retrying(lambda: _delete_lead_once(deps, firm_id, lead_id))


async def _delete_lead_once(deps: Deps, firm_id: int, lead_id: int) -> bool:
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await queries.lock_lead(conn, firm_id, lead_id=lead_id, to_delete=True)
        if row is None:
            return False
        phone = row["phone_e164"]
        if phone is not None:
            await conversation_queries.lock_conversation(conn, firm_id, phone)
        linked = await conversation_queries.ids_for_lead(conn, firm_id, lead_id)
        await queries.delete_lead(conn, firm_id, lead_id)
        if phone is not None:
            await conversation_queries.relink_conversations(conn, firm_id, [phone])
        await events.record(conn, firm_id, "lead.deleted", {"lead_id": lead_id})
        await feed.conversations_changed(conn, firm_id, linked)
    await events.wake(deps.redis, [firm_id])
    log.info("lead_deleted", lead_id=lead_id)
    return True
