"""The inbox: every signed Twilio webhook is a row in PostgreSQL before Twilio gets an answer.

Why a row first: Twilio retries a webhook it got no 2xx for, and we must lose nothing
(an opt-out is a legal duty). So the route stores the request, applies an inbound consent
keyword in that same transaction (no send is claimed once Twilio has our 200), and only
then enqueues the job that does the rest. If the broker is down the row is still there;
the sweeper re-enqueues unprocessed rows. Replays collapse on (kind, MessageSid, status).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Mapping

import structlog

from send_pipeline import consent
from shared.broker import enqueue
from shared.deps import Deps
from shared.phones import E164_RE, check_phone
from shared.web import parse_id
from webhooks import queries
from webhooks.keywords import Keyword, classify_keyword

log = structlog.get_logger(__name__)

KINDS = ("status", "inbound")
# How long a webhook waits for the broker before answering anyway. Twilio gives a webhook
# 15 s; an unreachable (not refusing) broker host could otherwise eat all of it.
ENQUEUE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Stored:
    inbox_id: int
    created: bool  # False: a replay of a webhook stored before
    pending: bool  # not processed yet: its job should be (re-)enqueued
    keyword: Keyword | None = None
    consent_changed: bool = False


def message_id_param(raw: str | None) -> int | None:
    """Our message id from the StatusCallback URL's `?m=`; None unless a positive bigint."""
    return parse_id(raw)


def twilio_status_of(kind: str, params: Mapping[str, str]) -> str:
    if kind == "status":
        return (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    return (params.get("SmsStatus") or "received").strip().lower()


def sender_phone(raw: str | None, region: str) -> str | None:
    """The E.164 form of a webhook's From/To; None when it is not a phone (short code, alphanumeric)."""
    if not raw:
        return None
    checked = check_phone(raw, region)
    if checked.status == "valid":
        return checked.e164
    raw = raw.strip()
    return raw if E164_RE.match(raw) else None


async def store_webhook(deps: Deps, kind: str, params: Mapping[str, str], message_id: int | None) -> Stored:
    """Write the webhook to `twilio_inbox` (and an inbound keyword's consent change) in one
    transaction. Raises what the pool raises when PostgreSQL is down: the route answers 503."""
    sid = params["MessageSid"]
    twilio_status = twilio_status_of(kind, params)
    async with deps.pool.acquire() as conn:
        async with conn.transaction():
            inbox_id = await queries.insert_inbox(conn, kind, sid, twilio_status, message_id, dict(params))
            if inbox_id is None:
                existing = await queries.find_inbox(conn, kind, sid, twilio_status)
                log.info("webhook_replayed", kind=kind, message_sid=sid, inbox_id=existing["id"])
                return Stored(existing["id"], created=False, pending=existing["processed_at"] is None)
            keyword = classify_keyword(params.get("Body")) if kind == "inbound" else None
            changed = False
            if keyword is not None and keyword.kind in ("opt_out", "opt_in"):
                changed = await _apply_keyword(conn, keyword, params)
    log.info("webhook_stored", kind=kind, message_sid=sid, inbox_id=inbox_id, twilio_status=twilio_status,
             keyword=keyword.kind if keyword else None, consent_changed=changed)
    return Stored(inbox_id, created=True, pending=True, keyword=keyword, consent_changed=changed)


async def _apply_keyword(conn: Any, keyword: Keyword, params: Mapping[str, str]) -> bool:
    """Opt the sender out (or back in) for the firm that owns the To number."""
    firm = await queries.firm_by_number(conn, (params.get("To") or "").strip())
    if firm is None:
        log.warning("keyword_for_unknown_number", keyword=keyword.word)
        return False
    phone = sender_phone(params.get("From"), firm["default_region"])
    if phone is None:
        log.warning("keyword_from_unusable_sender", firm_id=firm["id"], keyword=keyword.word)
        return False
    change = consent.opt_out if keyword.kind == "opt_out" else consent.opt_in
    return await change(conn, firm["id"], phone, keyword.source, message_sid=params.get("MessageSid"))


async def enqueue_inbox(kind: str, inbox_id: int) -> None:
    """Hand the row to its queue: `status` -> apply_status, `inbound` -> handle_inbound."""
    from webhooks import actors

    target = actors.apply_status if kind == "status" else actors.handle_inbound
    await enqueue(target, inbox_id)


async def enqueue_quietly(kind: str, inbox_id: int) -> bool:
    """Enqueue, but a broker failure is only logged: the row is safe, the sweeper replays it."""
    try:
        await asyncio.wait_for(enqueue_inbox(kind, inbox_id), ENQUEUE_TIMEOUT_S)
    except Exception as exc:  # any broker trouble: Twilio must still get its 2xx
        log.warning("inbox_enqueue_failed", kind=kind, inbox_id=inbox_id, error=f"{type(exc).__name__}: {exc}")
        return False
    return True


async def enqueue_many_quietly(kind: str, inbox_ids: list[int]) -> bool:
    """`enqueue_quietly` for a batch: one Redis round trip on a RedisBroker."""
    if not inbox_ids:
        return True
    from shared import async_enqueue
    from webhooks import actors

    target = actors.apply_status if kind == "status" else actors.handle_inbound
    try:
        if async_enqueue.supports(target.broker):
            await asyncio.wait_for(async_enqueue.enqueue_many(target.broker, [(target, (i,)) for i in inbox_ids]),
                                   ENQUEUE_TIMEOUT_S)
        else:
            await asyncio.wait_for(asyncio.gather(*(enqueue(target, i) for i in inbox_ids)), ENQUEUE_TIMEOUT_S)
    except Exception as exc:  # any broker trouble: Twilio must still get its 2xx
        log.warning("inbox_enqueue_failed", kind=kind, inbox_ids=len(inbox_ids), first_inbox_id=inbox_ids[0],
                    error=f"{type(exc).__name__}: {exc}")
        return False
    return True
