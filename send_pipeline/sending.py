"""The worker side of a send: claim, call Twilio once, record what happened.

docs/send-pipeline.md's "sends happen once", step by step:

1. Claim: one UPDATE takes a due `queued` row without a sid to `sending` (claimed_at,
   attempts + 1), re-checking the sendable decision in the same statement; a row that
   is no longer sendable (a STOP committed before the claim) becomes `blocked` and
   Twilio is never called. A row that is not `queued` is left alone.
2. One Twilio call with the firm's account (its subaccount, else the main one), from
   the sender chosen at the claim (or through its Messaging Service), with StatusCallback
   `PUBLIC_BASE_URL/twilio/status?m=<id>` so a callback that beats us to the database
   still finds its message.
3. The outcome, by the Twilio client's error kind:
   - success → sid, `sent`, Twilio's status, segments (never moving a status back);
   - not received (429, refused) → `queued`, due after a backoff, re-enqueued;
   - ambiguous (timeout, 5xx) → stays `sending`; the sweeper asks Twilio's list before
     anything is retried (`sweeps.py`);
   - an account-level error (20003, 21606/21659, 30032/30034) → back to `queued`, and
     the firm (or the Twilio account) is paused (firms/pauses.py): not this message's fault;
   - permanent → `failed`, and 21610 opts the phone out, 21614 records a landline,
     21211 marks the phone invalid, in the same transaction.

Every write after the claim names the claim (`claimed_at`), so a stale worker can never
overwrite what the sweeper or a later claim decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import structlog

from firms.credentials import CredentialsUnavailable
from firms.pauses import is_account_error, pause_for_error, twilio_for_firm
from firms.queries import pause_firm
import events
from conversations import feed
from lookup.service import record_invalid, record_landline
from send_pipeline import queries
from send_pipeline.writes import claim_with_event, store_sent_with_event
from consent import ledger as consent
from send_pipeline.messages import backoff_ms
from send_pipeline.quiet_hours import decide_for
from shared import metrics
from shared.deps import Deps
from shared.twilio import TwilioAmbiguous, TwilioError, TwilioNotReceived

log = structlog.get_logger(__name__)

# Twilio error codes with a consequence beyond this message.
UNSUBSCRIBED = 21610
NOT_MOBILE = 21614
INVALID_NUMBER = 21211

# After this many claims whose outcome was "try again", give up on the message.
MAX_ATTEMPTS = 25


@dataclass(frozen=True)
class SendOutcome:
    """What one attempt did (`result`: sent, blocked, requeued, early, ambiguous, failed or
    skipped) and, when the message must be tried again, after how long: the actor enqueues
    that retry, so this module never imports its own actor."""

    result: str
    retry_in_ms: int | None = None


def status_callback_url(public_base_url: str, message_id: int) -> str:
    return f"{public_base_url}/twilio/status?m={message_id}"


async def send_message(deps: Deps, message_id: int) -> SendOutcome:
    """Send one message at most once; returns what happened and whether to come back."""
    structlog.contextvars.bind_contextvars(message_id=message_id)
    claim = await claim_with_event(deps.pool, message_id, deps.settings.twilio_account_sid)
    if claim is None:
        return await _not_claimed(deps, message_id)
    await events.wake(deps.redis, [claim["firm_id"]])
    if claim["status"] == "blocked":
        log.info("send_blocked", reason=claim["blocked_reason"])
        return SendOutcome("blocked")

    # Quiet hours again, now: the window may have closed since the send was accepted (a
    # scheduled send never uses the reply grace). The ValidityPeriod ends with the window.
    now = datetime.now(timezone.utc)
    grace = None if claim["send_at"] is not None else timedelta(minutes=deps.settings.quiet_hours_reply_grace_min)
    quiet = decide_for(claim, now, grace=grace)
    if not quiet.allowed:
        async with deps.pool.acquire() as conn, conn.transaction():
            if await queries.block_claim(conn, message_id, claim["claimed_at"], "quiet_hours"):
                await feed.message_changed(conn, message_id)
        await events.wake(deps.redis, [claim["firm_id"]])
        log.info("send_blocked", reason="quiet_hours")
        return SendOutcome("blocked")
    validity_s = quiet.validity_period_s(now)

    try:
        twilio = twilio_for_firm(deps, claim["twilio_account_sid"], claim["twilio_auth_token_enc"])
    except CredentialsUnavailable as exc:  # CREDENTIALS_KEY unset or changed: the firm's problem
        async with deps.pool.acquire() as conn, conn.transaction():
            if await queries.return_to_queued(conn, message_id, claim["claimed_at"]):
                await feed.message_changed(conn, message_id)
            await pause_firm(conn, claim["firm_id"], None, exc.message)
        await events.wake(deps.redis, [claim["firm_id"]])
        log.critical("firm_sending_paused", firm_id=claim["firm_id"], reason=exc.message)
        return SendOutcome("paused")
    try:
        sent = await twilio.send_message(
            to=claim["to_phone"],
            from_=claim["from_phone"],
            body=claim["body"],
            status_callback=status_callback_url(deps.settings.public_base_url, message_id),
            validity_period=validity_s,
            messaging_service_sid=claim["messaging_service_sid"],
        )
    except TwilioNotReceived as exc:
        return await _not_received(deps, claim, exc)
    except TwilioAmbiguous as exc:
        await queries.mark_ambiguous(deps.pool, message_id, claim["claimed_at"], deps.settings.stale_after_s)
        log.warning("send_ambiguous", status=exc.status, code=exc.code, attempts=claim["attempts"])
        return SendOutcome("ambiguous")
    except TwilioError as exc:  # permanent
        if is_account_error(exc.code):
            await _pause(deps, claim, twilio.account_sid, exc)
            return SendOutcome("paused")
        await _permanent(deps, claim, exc)
        return SendOutcome("failed")

    structlog.contextvars.bind_contextvars(message_sid=sent.sid)
    try:
        stored = await store_sent_with_event(deps.pool, message_id, sent.sid, sent.status, sent.num_segments,
                                             validity_s, sent.from_)
        await events.wake(deps.redis, [claim["firm_id"]])
    except asyncpg.UniqueViolationError:
        # Only possible when the sweeper adopted this very sid for another claim of the
        # same body: Twilio has one message, and one row says so.
        log.error("send_sid_already_recorded")
        return SendOutcome("sent")
    if stored is not None and stored["twilio_sid"] != sent.sid:
        log.error("send_sid_mismatch", recorded_sid=stored["twilio_sid"])
    log.info("message_sent", segments=sent.num_segments, attempts=claim["attempts"], validity_period_s=validity_s)
    await metrics.observe_send_latency(deps.redis, (datetime.now(timezone.utc) - claim["created_at"]).total_seconds())
    return SendOutcome("sent")


async def _not_claimed(deps: Deps, message_id: int) -> SendOutcome:
    """Nothing to do, unless the row is queued but not yet due: then come back when it is
    (a delayed job that arrived a little early must not wait for the sweeper)."""
    wait_ms = await queries.queued_wait_ms(deps.pool, message_id)
    if wait_ms is not None:  # never a dramatiq delay past RETRY_MAX_BACKOFF_MS (the sweeper covers the rest)
        return SendOutcome("early", retry_in_ms=max(1, min(wait_ms, deps.settings.retry_max_backoff_ms)))
    log.debug("send_skipped")
    return SendOutcome("skipped")


async def _not_received(deps: Deps, claim: Any, exc: TwilioError) -> SendOutcome:
    message_id, attempts = claim["id"], claim["attempts"]
    if attempts >= MAX_ATTEMPTS:
        async with deps.pool.acquire() as conn, conn.transaction():
            if await queries.mark_failed(conn, message_id, claim["claimed_at"], exc.code,
                                         f"gave up after {attempts} attempts: {exc.detail}"):
                await feed.message_changed(conn, message_id)
        await events.wake(deps.redis, [claim["firm_id"]])
        log.warning("send_gave_up", attempts=attempts, code=exc.code)
        return SendOutcome("failed")
    s = deps.settings
    delay = backoff_ms(attempts, s.retry_min_backoff_ms, s.retry_max_backoff_ms)
    async with deps.pool.acquire() as conn, conn.transaction():
        requeued = await queries.requeue_after(conn, message_id, claim["claimed_at"], delay)
        if requeued:
            await feed.message_changed(conn, message_id)
    await events.wake(deps.redis, [claim["firm_id"]])
    log.info("send_retry_scheduled", status=exc.status, code=exc.code, attempts=attempts, delay_ms=delay)
    return SendOutcome("requeued", retry_in_ms=delay if requeued else None)


async def _pause(deps: Deps, claim: Any, account_sid: str, exc: TwilioError) -> None:
    """The message goes back to `queued` (due now, but not claimable while paused) and the
    firm or the account is paused, in one transaction."""
    async with deps.pool.acquire() as conn, conn.transaction():
        if await queries.return_to_queued(conn, claim["id"], claim["claimed_at"]):
            await feed.message_changed(conn, claim["id"])
        scope = await pause_for_error(conn, claim["firm_id"], account_sid, exc.code, exc.detail)
    await events.wake(deps.redis, [claim["firm_id"]])
    log.warning("send_paused", code=exc.code, scope=scope)


async def _permanent(deps: Deps, claim: Any, exc: TwilioError) -> None:
    """`failed` with Twilio's code and text; what the code says about the phone is
    recorded in the same transaction."""
    phone, firm_id = claim["to_phone"], claim["firm_id"]
    woken: set[int] = set()
    async with deps.pool.acquire() as conn, conn.transaction():
        if exc.code == UNSUBSCRIBED:
            await consent.opt_out(conn, firm_id, phone, "twilio_21610")
        elif exc.code == NOT_MOBILE:
            await record_landline(conn, phone)
            woken = await feed.phone_changed(conn, phone)
        elif exc.code == INVALID_NUMBER:
            await record_invalid(conn, phone, "twilio_21211")
            woken = await feed.phone_changed(conn, phone)
        if await queries.mark_failed(conn, claim["id"], claim["claimed_at"], exc.code, exc.detail):
            await feed.message_changed(conn, claim["id"])
    await events.wake(deps.redis, woken | {firm_id})
    log.info("send_failed", code=exc.code, status=exc.status)
