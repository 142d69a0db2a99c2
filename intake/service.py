"""Intake: store a signup, validate its phone, hand a valid phone to Lookup.

A signup is stored as it came (`pending`, raw phone kept) before anything is enqueued;
`validate_lead` then normalises the phone in the firm's default region and records
`valid` (E.164), `missing` or `invalid` with a reason. Both steps are idempotent: a
repeated hook finds the stored signup, a repeated job finds the lead no longer pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

import events
from conversations import feed
from conversations import queries as conversation_queries
from intake import queries
from intake.shapes import lead_json
from intake.validation import LeadInput
from lookup import actors as lookup_actors
from lookup import queries as lookup_queries
from lookup.service import ttl_seconds
from shared import metrics
from shared.broker import enqueue
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
    async with pool.acquire() as conn, conn.transaction():
        row = await queries.insert_lead(conn, firm_id, lead)
        if row is not None:
            await record_lead_updated(conn, firm_id, row["id"])
    if row is not None:
        await events.wake(redis, [firm_id])
        return Accepted(row["id"], row["phone_status"], created=True)
    row = await queries.lead_by_external_id(pool, firm_id, lead.external_id)
    if row is None:  # cannot happen: leads are only deleted with their firm
        raise RuntimeError("a conflicting lead vanished")
    return Accepted(row["id"], row["phone_status"], created=False)


async def lead_for_firm(pool: asyncpg.Pool, firm_id: int, lead_id: int) -> asyncpg.Record | None:
    """One signup of the firm with its line and sendable code; None when not the firm's."""
    return await queries.lead_for_firm(pool, firm_id, lead_id)


async def record_lead_updated(conn: asyncpg.Connection, firm_id: int, lead_id: int) -> None:
    """The feed's `lead.updated` with the lead's shape as it now is (caller's transaction)."""
    row = await queries.lead_for_firm(conn, firm_id, lead_id)
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
    Lookup for the line type when no fresh answer is cached. None for an unknown lead."""
    lead = await queries.lead_to_validate(deps.pool, lead_id)
    if lead is None:
        log.warning("validate_unknown_lead", lead_id=lead_id)
        return None
    status, e164, error = lead["phone_status"], lead["phone_e164"], lead["phone_error"]
    fresh = False
    if status == "pending":
        check = check_phone(lead["phone_raw"], lead["default_region"])
        status, e164, error = check.status, check.e164, check.error
        async with deps.pool.acquire() as conn, conn.transaction():
            if e164 is not None:
                await conversation_queries.lock_conversation(conn, lead["firm_id"], e164)
                cached = await lookup_queries.cached_line(conn, e164, ttl_seconds(deps))
                fresh = bool(cached and cached["fresh"])
                if cached is not None and cached["valid"] is False:
                    status, error = "invalid", lookup_queries.LOOKUP_INVALID
            changed = await queries.set_phone(conn, lead_id, status, e164, error)
            if changed:
                await record_lead_updated(conn, lead["firm_id"], lead_id)
            if changed and e164 is not None:
                if await conversation_queries.relink_conversations(conn, lead["firm_id"], [e164]):
                    await feed.phone_changed(conn, e164, lead["firm_id"])
        if changed:
            await events.wake(deps.redis, [lead["firm_id"]])
            log.info("lead_validated", lead_id=lead_id, phone_status=status, phone_error=error)
    elif e164 is not None:  # a repeated job: only make sure the line type gets looked up
        cached = await lookup_queries.cached_line(deps.pool, e164, ttl_seconds(deps))
        fresh = bool(cached and cached["fresh"])
    wants_lookup = e164 is not None and not fresh and (status == "valid" or error == lookup_queries.LOOKUP_INVALID)
    if wants_lookup:
        await enqueue(lookup_actors.lookup_line_type, e164)
    elif fresh and lead["phone_status"] == "pending":  # known at once, from the cache
        await metrics.record_lookup(deps.redis, "cache_hit")
        await metrics.observe_line_type_latency(deps.redis, lead["age_s"])
    return Verdict(status, e164, error, wants_lookup)
