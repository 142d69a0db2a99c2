"""The inbox: every signed Twilio webhook is a row in PostgreSQL before Twilio gets an answer.

Why a row first: Twilio retries a webhook it got no 2xx for, and we must lose nothing
(an opt-out is a legal duty). So the route stores the request, applies an inbound consent
keyword (or pauses sends for review of a text that reads like one) in that same
transaction (no send is claimed once Twilio has our 200), and only then enqueues the
job that does the rest (dispatch.py). If the broker is down the row is still there; the
sweeper re-enqueues unprocessed rows. Replays collapse on (kind, MessageSid, status).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import structlog

import events
from consent import ledger as consent
from conversations import feed
from consent.keywords import Keyword, inbound_keyword, reads_like_opt_out
from shared.deps import Deps
from shared.phones import E164_RE, check_phone
from shared.web import parse_id
from webhooks import queries
from send_pipeline.queries import cancel_on_reply

log = structlog.get_logger(__name__)

MAX_DETAIL = 160  # the raw keyword text kept in the ledger


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


# How long a webhook waits for a pool connection before answering 503 (Twilio retries):
# well inside Twilio's 15 s, so a busy pool never makes its callbacks time out.
ACQUIRE_TIMEOUT_S = 3.0


async def store_webhook(deps: Deps, kind: str, params: Mapping[str, str], message_id: int | None) -> Stored:
    """Write the webhook to `twilio_inbox` (and an inbound text's consent meaning) in one
    transaction. Raises what the pool raises when PostgreSQL is down: the route answers 503."""
    sid = params["MessageSid"]
    twilio_status = twilio_status_of(kind, params)
    keyword: Keyword | None = None
    changed = review = False
    woken: list[int] = []
    async with deps.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
        async with conn.transaction():
            inbox_id = await queries.insert_inbox(conn, kind, sid, twilio_status, message_id, dict(params))
            if inbox_id is None:
                existing = await queries.find_inbox(conn, kind, sid, twilio_status)
                log.info("webhook_replayed", kind=kind, message_sid=sid, inbox_id=existing["id"])
                return Stored(existing["id"], created=False, pending=existing["processed_at"] is None)
            if kind == "inbound":
                # the firm that owns the To number (or its Messaging Service), looked up once
                firm = await queries.firm_by_number(conn, (params.get("To") or "").strip(),
                                                    params.get("MessagingServiceSid"))
                keyword, changed, review = await _apply_consent_meaning(conn, firm, params)
                canceled = await _cancel_on_reply(conn, firm, params)
                if firm is not None and (changed or review or canceled):
                    woken = [firm["id"]]
    await events.wake(deps.redis, woken)
    log.info("webhook_stored", kind=kind, message_sid=sid, inbox_id=inbox_id, twilio_status=twilio_status,
             keyword=keyword.kind if keyword else None, consent_changed=changed, review_pending=review)
    return Stored(inbox_id, created=True, pending=True, keyword=keyword, consent_changed=changed)


async def _cancel_on_reply(conn: Any, firm: Any, params: Mapping[str, str]) -> list[int]:
    """The lead wrote first: its scheduled sends created with cancel_on_reply are
    cancelled in this transaction, before Twilio has our 200 (so none is released after)."""
    phone = sender_phone(params.get("From"), firm["default_region"]) if firm is not None else None
    if phone is None:
        return []
    canceled = await cancel_on_reply(conn, firm["id"], phone)
    for message_id in canceled:
        await feed.message_changed(conn, message_id)
    if canceled:
        log.info("scheduled_sends_canceled_by_reply", firm_id=firm["id"], message_ids=canceled)
    return canceled


async def _apply_consent_meaning(conn: Any, firm: Any, params: Mapping[str, str]) -> tuple[Keyword | None, bool, bool]:
    """Apply what the text means for consent, for the firm that owns the To number:
    (the keyword, whether consent changed, whether sends are now paused for review).

    A keyword (or Advanced Opt-Out's OptOutType) opts the sender out or back in; a text
    that reads like an opt-out pauses sends until staff review it. Both here, in the
    inbox row's transaction, so no send is claimed once Twilio has our answer."""
    keyword = inbound_keyword(params)
    body = params.get("Body") or ""
    rule = reads_like_opt_out(body) if keyword is None else None
    if rule is None and (keyword is None or keyword.kind == "help"):
        return keyword, False, False
    if firm is None:
        log.warning("consent_text_for_unknown_number", keyword=keyword.word if keyword else None, rule=rule)
        return keyword, False, False
    phone = sender_phone(params.get("From"), firm["default_region"])
    if phone is None:
        log.warning("consent_text_from_unusable_sender", firm_id=firm["id"])
        return keyword, False, False
    if keyword is None:
        paused = await queries.pause_for_review(conn, firm["id"], phone)
        if paused:  # the conversation now shows the review notice
            await feed.phone_changed(conn, phone, firm["id"])
        return None, False, paused
    change = consent.opt_out if keyword.kind == "opt_out" else consent.opt_in
    changed = await change(conn, firm["id"], phone, keyword.source, message_sid=params.get("MessageSid"),
                           detail=body[:MAX_DETAIL])
    return keyword, changed, False
