"""The inbox: every signed Twilio webhook is a row in PostgreSQL before Twilio gets an answer.

Why a row first: Twilio retries a webhook it got no 2xx for, and we must lose nothing
(an opt-out is a legal duty). So the route stores the request, applies an inbound consent
keyword in that same transaction (no send is claimed once Twilio has our 200), and only
then enqueues the job that does the rest (dispatch.py). If the broker is down the row is still there;
the sweeper re-enqueues unprocessed rows. Replays collapse on (kind, MessageSid, status).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import structlog

from consent import ledger as consent
from shared.deps import Deps
from shared.phones import E164_RE, check_phone
from shared.web import parse_id
from webhooks import queries
from consent.keywords import Keyword, classify_keyword

log = structlog.get_logger(__name__)

KINDS = ("status", "inbound")


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
    """Write the webhook to `twilio_inbox` (and an inbound keyword's consent change) in one
    transaction. Raises what the pool raises when PostgreSQL is down: the route answers 503."""
    sid = params["MessageSid"]
    twilio_status = twilio_status_of(kind, params)
    async with deps.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
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
