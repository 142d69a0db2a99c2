"""Erasure of a person (GDPR/CCPA) and a firm's offboarding.

A person, in a firm, is every signup that ever had one of their phones and every phone
those signups ever had (lead_phones). Erasing them, in this order:

1. their queued and scheduled messages are `canceled` (committed at once: no worker
   claims one after this);
2. while a send of theirs is in flight (`sending`), the erasure waits (the job is retried
   with backoff): the send's Twilio record must be known to be deleted;
3. one transaction, the person's conversations and messages locked: the Twilio sids are
   remembered for deletion; inbox rows, events, messages, conversations, signups,
   remembered phones, flags, opt-out removals, help replies and outbound webhook
   deliveries (with their attempts) go; the consent ledger and
   the flag audit keep their rows with the phone replaced by HMAC(ERASURE_KEY, firm id ||
   phone); a phone that was opted out leaves a suppression row with the same hash (and
   the opt-out's source), so a later signup with that phone is opted out again;
4. each Twilio message record is deleted (Messages DELETE, with the firm's account), a job
   per message, retried until done; the erasure is `done` when the last one is.

What stays: the hashed ledgers, the suppressions, the erasure's own record (hashes, when,
by whom) and the global Lookup cache (a fact about a number, not a person).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Sequence

import asyncpg
import structlog

import events
from firms.pauses import twilio_for_firm
from intake import erasure_queries as queries
from outbound import queries as outbound_queries
from shared.deps import Deps
from shared.errors import AppError, TransientError

log = structlog.get_logger(__name__)

HASH_PREFIX = "erased:"
DEADLOCK_RETRIES = 5


class ErasureNotConfigured(AppError):
    """ERASURE_KEY is not set: nothing can be erased (503)."""


class SendInFlight(TransientError):
    """A send of the person is with Twilio right now: erase once its outcome is stored."""


def phone_hash(key: str, firm_id: int, phone_e164: str) -> str:
    """HMAC-SHA256(ERASURE_KEY, firm id || phone): the erased phone, in the ledger and the
    suppression list. The phone starts with '+', so the concatenation is unambiguous."""
    digest = hmac.new(key.encode("utf-8"), f"{firm_id}{phone_e164}".encode("utf-8"), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest


def erasure_key(deps: Deps) -> str:
    key = deps.settings.erasure_key
    if not key:
        raise ErasureNotConfigured("Erasure is not configured on this server (ERASURE_KEY).",
                                   code="erasure_not_configured")
    return key


async def request_erasure(deps: Deps, firm_id: int, requested_by: str, *, phone: str | None = None,
                          lead_id: int | None = None) -> int:
    """Record the request (the row first, then the job); the erasure's id."""
    erasure_key(deps)
    erasure_id = await queries.insert_erasure(deps.pool, firm_id, requested_by, phone, lead_id)
    log.info("erasure_requested", erasure_id=erasure_id, firm_id=firm_id, requested_by=requested_by)
    return erasure_id


async def erase_person(deps: Deps, erasure_id: int) -> list[str]:
    """Steps 1-3 (idempotent: an erasure already erased only returns its pending Twilio
    deletions). Returns the sids whose Twilio records are to be deleted (step 4)."""
    key = erasure_key(deps)
    async with deps.pool.acquire() as conn:
        erasure = await conn.fetchrow("SELECT * FROM erasures WHERE id = $1", erasure_id)
        if erasure is None:
            log.warning("erasure_unknown", erasure_id=erasure_id)
            return []
        if erasure["erased_at"] is not None:
            return await queries.pending_deletions(conn, erasure_id)
        firm_id = erasure["firm_id"]
        seeds = [erasure["subject_phone"]] if erasure["subject_phone"] else []
        leads = [erasure["subject_lead"]] if erasure["subject_lead"] else []
        phones, lead_ids = await queries.person_phones(conn, firm_id, seeds, leads)
    return await erase_phones(deps, key, erasure_id, firm_id, phones, lead_ids)


async def erase_phones(deps: Deps, key: str, erasure_id: int, firm_id: int, phones: Sequence[str],
                       lead_ids: Sequence[int], *, final: bool = True) -> list[str]:
    """Steps 1-3 for these phones and signups of the firm; `final` marks the erasure
    erased (a firm's offboarding erases many batches under one erasure)."""
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return await _erase_phones_once(deps, key, erasure_id, firm_id, phones, lead_ids, final=final)
        except asyncpg.DeadlockDetectedError:  # with a status callback's transaction: again
            log.info("erasure_deadlock_retried", erasure_id=erasure_id, attempt=attempt + 1)
    raise SendInFlight(f"erasure {erasure_id}: deadlocked {DEADLOCK_RETRIES} times", code="erasure_deadlock")


async def _erase_phones_once(deps: Deps, key: str, erasure_id: int, firm_id: int, phones: Sequence[str],
                             lead_ids: Sequence[int], *, final: bool) -> list[str]:
    async with deps.pool.acquire() as conn:
        canceled = await queries.cancel_unsent(conn, firm_id, phones)
        if canceled:
            log.info("erasure_canceled_unsent", erasure_id=erasure_id, messages=canceled)
        async with conn.transaction():
            rows = await queries.lock_person_messages(conn, firm_id, phones)
            if any(r["status"] == "sending" for r in rows):
                raise SendInFlight(f"erasure {erasure_id}: a send is in flight", code="send_in_flight")
            firm = await conn.fetchrow("SELECT twilio_account_sid FROM firms WHERE id = $1", firm_id)
            sids = sorted({r["twilio_sid"] for r in rows if r["twilio_sid"]})
            conv_ids = sorted(await queries.conversation_ids(conn, firm_id, phones))
            message_ids = [r["message_id"] for r in rows]
            hashes = {p: phone_hash(key, firm_id, p) for p in phones}
            await queries.remember_erased_messages(conn, erasure_id, firm_id, firm["twilio_account_sid"], sids)
            await queries.suppress_opted_out(conn, firm_id, hashes)
            await queries.hash_ledgers(conn, firm_id, hashes)
            await queries.delete_person_rows(conn, firm_id, phones, lead_ids, conv_ids, message_ids, sids,
                                             events_too=final)
            # outbound webhook deliveries carry the events' payloads (phones, names)
            await outbound_queries.delete_person_deliveries(conn, firm_id, phones, lead_ids, conv_ids, message_ids)
            await events.record_many(conn, [] if not final else [
                *((firm_id, "lead.deleted", {"lead_id": i}) for i in lead_ids),
                *((firm_id, "conversation.deleted", {"conversation_id": i}) for i in conv_ids),
            ])
            if final:
                await queries.mark_erased(conn, erasure_id, sorted(hashes.values()), done=not sids)
        pending = await queries.pending_deletions(conn, erasure_id) if final else sids
    await events.wake(deps.redis, [firm_id])
    log.info("person_erased", erasure_id=erasure_id, firm_id=firm_id, phones=len(phones), signups=len(lead_ids),
             conversations=len(conv_ids), messages=len(message_ids), twilio_records=len(sids))
    return pending


async def delete_twilio_record(deps: Deps, sid: str) -> None:
    """Step 4 for one message: Messages DELETE with the firm's account (a 404 is done
    too); raises a Twilio error to be retried otherwise."""
    row = await queries.deletion(deps.pool, sid)
    if row is None or row["deleted_at"] is not None:
        return
    await queries.count_attempt(deps.pool, sid)
    twilio = twilio_for_firm(deps, row["firm_account_sid"], row["twilio_auth_token_enc"])
    await twilio.delete_message(sid)
    async with deps.pool.acquire() as conn, conn.transaction():
        await queries.mark_deleted(conn, sid)


async def erasure_status(pool: asyncpg.Pool, firm_id: int, erasure_id: int) -> dict | None:
    row = await queries.erasure_for_firm(pool, firm_id, erasure_id)
    if row is None:
        return None
    return {"erasure_id": row["id"], "status": "done" if row["done_at"] else "running",
            "requested_at": row["requested_at"], "done_at": row["done_at"]}


async def restore_suppression(conn: asyncpg.Connection, key: str | None, firm_id: int, phone_e164: str) -> str | None:
    """Intake: the source of an erased person's opt-out of this phone, if any (checked by
    hash when a signup's phone is validated)."""
    if not key:
        return None
    return await queries.suppression_source(conn, firm_id, phone_hash(key, firm_id, phone_e164))
