"""The send pipeline's web-side behaviour: open a conversation, read a thread, accept a send.

Accepting a send is the order docs/send-pipeline.md gives, each step able to refuse before anything
is stored: the sendable decision (409) → the duplicate window → the per-user rate limit
(429) → one statement that inserts the message `queued` and bumps the conversation →
the `send_message` job. A row in PostgreSQL first, then the job: if the enqueue fails,
the sweeper re-enqueues the row. Without Redis the checks cannot run, so nothing is
accepted (503).

The worker side (claim, Twilio, outcomes) is in `sending.py`; the sweeper's in `sweeps.py`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import redis.exceptions
import structlog

import events
from conversations import queries as conversation_queries
from conversations.shapes import conversation_json, message_json
from events import queries as event_queries
from send_pipeline import queries
from send_pipeline.thread_cursor import ThreadCursor
from conversations import feed
from send_pipeline.writes import store_queued_message
from send_pipeline.actors import send_message
from send_pipeline.limits import gate_for
from send_pipeline.quiet_hours import QuietDecision, decide_for, refusal_fields
from conversations.sendable import NOTICES, rate_limit_text
from shared.broker import enqueue
from shared.deps import Deps
from shared.errors import HttpError, not_found


log = structlog.get_logger(__name__)

# A lead with one of these has no phone to hold a conversation with.
NO_CONVERSATION_CODES = frozenset({"no_phone", "pending", "invalid_phone"})

# How long a duplicate waits for the first request's row (normally there within ms).
DUPLICATE_ROW_WAIT_S = 1.5
# How often a send re-runs the gate when the first request it duplicated was never stored.
GATE_TRIES = 3

THREAD_DEFAULT_LIMIT = 50
THREAD_MAX_LIMIT = 200


class RedisUnavailable(HttpError):
    def __init__(self) -> None:
        super().__init__(
            503, "redis_unavailable",
            "Sending is unavailable right now: the duplicate and rate-limit checks cannot run. "
            "Nothing was sent; try again shortly.",
            headers={"Retry-After": "2"},
        )


def refusal(code: str) -> HttpError:
    """409 with the product's words for a not-sendable code."""
    notice = NOTICES[code]
    return HttpError(409, code, notice.text, notice=notice.as_json())


def quiet_refusal(decision: QuietDecision) -> HttpError:
    """409 `quiet_hours`: design.md's sentence and when the window opens next."""
    return HttpError(409, "quiet_hours", decision.text, **refusal_fields(decision))


def reply_grace(deps: Deps) -> timedelta:
    return timedelta(minutes=deps.settings.quiet_hours_reply_grace_min)


# ---- conversations -----------------------------------------------------------------------


async def open_conversation(deps: Deps, firm_id: int, lead_id: int) -> tuple[dict[str, Any], bool]:
    """The conversation for the lead's phone, and whether it was created now.

    A lead without a valid phone (no_phone, pending, invalid_phone) has none: 409. A lead
    whose phone cannot be texted for another reason (landline, opted out...) still gets
    its conversation, with the notice saying why it cannot send.
    """
    async with deps.pool.acquire() as conn:
        lead = await queries.lead_for_conversation(conn, firm_id, lead_id)
        if lead is None:
            raise not_found("lead")
        if lead["code"] in NO_CONVERSATION_CODES:
            raise refusal(lead["code"])
        conversation_id, created = await conversation_queries.upsert_conversation(conn, firm_id, lead["phone_e164"])
        row = await conversation_queries.fetch_conversation(conn, firm_id, conversation_id)
    structlog.contextvars.bind_contextvars(conversation_id=conversation_id)
    log.info("conversation_opened", lead_id=lead_id, created=created)
    return conversation_json(row), created


async def thread_page(deps: Deps, firm_id: int, conversation_id: int, *, after: ThreadCursor | None,
                      limit: int) -> dict[str, Any]:
    """A page of the thread, oldest first; `next` is the cursor of the following page (None
    at the end). A page after a cursor first carries the late messages (filed since the
    cursor's read, sorting before its end: see thread_cursor), then the ones after it."""
    async with deps.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        if not await queries.conversation_exists(conn, firm_id, conversation_id):
            raise not_found("conversation")
        bounds = await event_queries.feed_bounds(conn, firm_id)
        late: list[Any] = []
        if after is not None:
            if after.seen_seq > bounds["last_seq"]:
                raise HttpError(400, "invalid_cursor", "after must be the \"next\" cursor of a previous page.")
            if after.seen_seq < bounds["pruned_to"]:
                raise HttpError(410, "cursor_expired", "This cursor is too old to page on: read the thread again "
                                "from its start.")
            late = await queries.thread_late(conn, firm_id, conversation_id, after.last_id, after.seen_seq,
                                             limit + 1)
        if len(late) > limit:
            # the page ends among the late ones: the next page goes on from the last of them
            page = late[:limit]
            return {"items": [message_json(r) for r in page],
                    "next": str(ThreadCursor(after.last_id, page[-1]["late_seq"]))}  # type: ignore[union-attr]
        room = limit - len(late)
        rows = await queries.thread_after(conn, conversation_id, after.last_id if after else None, room + 1)
    more = len(rows) > room
    rows = rows[:room]
    last_id = rows[-1]["id"] if rows else after.last_id if after else None
    return {
        "items": [message_json(r) for r in [*late, *rows]],
        "next": str(ThreadCursor(last_id, bounds["last_seq"])) if more and last_id is not None else None,
    }


async def get_message(deps: Deps, firm_id: int, message_id: int) -> dict[str, Any]:
    row = await queries.fetch_message(deps.pool, firm_id, message_id)
    if row is None:
        raise not_found("message")
    return message_json(row)


async def cancel_message(deps: Deps, firm_id: int, message_id: int) -> dict[str, Any]:
    """`DELETE /v1/messages/{id}`: a `scheduled` message becomes `canceled`; any other
    status is 409 `not_scheduled` (404 for an unknown or another firm's message)."""
    async with deps.pool.acquire() as conn:
        async with conn.transaction():
            row = await queries.cancel_scheduled(conn, firm_id, message_id)
            if row is not None:
                await feed.message_changed(conn, message_id)
        if row is None:
            current = await queries.fetch_message(conn, firm_id, message_id)
            if current is None:
                raise not_found("message")
            raise HttpError(409, "not_scheduled",
                            f"Only a scheduled message can be cancelled; this one is {current['status']}.",
                            message_status=current["status"])
    await events.wake(deps.redis, [firm_id])
    log.info("scheduled_send_canceled", message_id=message_id, by="staff")
    return message_json(row)


async def quiet_notice(deps: Deps, conn: Any, firm_id: int, conversation_id: int,
                       now: datetime | None = None) -> dict[str, str] | None:
    """Thread open's `quiet_hours` notice (info) while the lead's window is closed; None
    when it is open (or the lead just texted: a reply is exempt)."""
    row = await queries.quiet_context(conn, firm_id, conversation_id)
    if row is None:
        return None
    decision = decide_for(row, now or datetime.now(timezone.utc), grace=reply_grace(deps))
    return None if decision.allowed else refusal_fields(decision)["notice"]


# ---- accepting a send ----------------------------------------------------------------------


async def accept_send(deps: Deps, firm_id: int, conversation_id: int, user: str, body: str, *,
                      send_at: datetime | None = None, cancel_on_reply: bool = False,
                      now: datetime | None = None) -> tuple[dict[str, Any], bool]:
    """Accept a staff member's send: (message JSON, True) for a new message, (the first
    message's JSON, False) for a duplicate inside the window. Raises `HttpError` 404, 409,
    429 or 503 having stored nothing.

    With `send_at` the message is stored `scheduled` (the sweeper releases it when due;
    no job now), refused at once when send_at falls in the lead's quiet hours."""
    now = now or datetime.now(timezone.utc)
    # One connection for the whole request: a pool checkout costs a reset round trip.
    async with deps.pool.acquire() as conn:
        message, created, message_id = await _check_and_store(
            deps, conn, firm_id, conversation_id, user, body, send_at, cancel_on_reply, now)
    if not created:
        return message, False
    structlog.contextvars.bind_contextvars(message_id=message_id)
    await events.wake(deps.redis, [firm_id])
    if send_at is not None:
        log.info("send_scheduled", segments=message["segments"], send_at=send_at.isoformat())
        return message, True
    try:
        await enqueue(send_message, message_id)
    except Exception as exc:  # the row is stored: the sweeper re-enqueues it
        log.warning("send_enqueue_failed", error=f"{type(exc).__name__}: {exc}")
    log.info("send_accepted", segments=message["segments"])
    return message, True


async def _check_and_store(deps: Deps, conn: Any, firm_id: int, conversation_id: int, user: str,
                           body: str, send_at: datetime | None, cancel_on_reply: bool,
                           now: datetime) -> tuple[dict[str, Any], bool, int]:
    """Steps 1–4 of a send on one connection: (message JSON, created, message id)."""
    settings = deps.settings
    row = await queries.conversation_for_send(conn, firm_id, conversation_id)
    if row is None:
        raise not_found("conversation")
    if row["code"] is not None:
        log.info("send_refused", reason=row["code"])
        raise refusal(row["code"])
    # Quiet hours: now (with the reply grace), or at send_at (scheduled sends never use it).
    if send_at is None:
        quiet = decide_for(row, now, grace=reply_grace(deps))
    else:
        quiet = decide_for(row, send_at, grace=None)
    if not quiet.allowed:
        log.info("send_refused", reason="quiet_hours", scheduled=send_at is not None)
        raise quiet_refusal(quiet)
    message_id: int = row["new_id"]
    gate = gate_for(deps.redis)
    # The duplicate key: the same text scheduled for another time is another message.
    key_body = body if send_at is None else f"{body}\x00send_at={send_at.astimezone(timezone.utc).isoformat()}"
    ident = dict(firm_id=firm_id, user=user, conversation_id=conversation_id, body=key_body, message_id=message_id)

    for _ in range(GATE_TRIES):
        try:
            result = await gate.check(**ident, window_ms=settings.dedupe_window_ms, limit=settings.send_rate_limit)
        except redis.exceptions.RedisError as exc:
            log.warning("send_gate_unavailable", error=type(exc).__name__)
            raise RedisUnavailable() from exc
        if result.duplicate_of is None:
            break
        first = await _wait_for_message(conn, firm_id, result.duplicate_of)
        if first is not None:
            log.info("send_deduplicated", message_id=result.duplicate_of)
            return message_json(first, deduplicated=True), False, result.duplicate_of
        # The first request took the window and then stored nothing (refused or died): its
        # key is gone or about to expire, so this request is the first after all.
    else:
        raise HttpError(409, "duplicate_in_flight",
                        "The same message is being sent right now. Check the thread before sending again.")

    if result.retry_after_s is not None:
        log.info("send_rate_limited", retry_after_s=result.retry_after_s)
        raise HttpError(429, "rate_limited", rate_limit_text(settings.send_rate_limit),
                        headers={"Retry-After": str(result.retry_after_s)}, retry_after=result.retry_after_s)

    try:
        stored = await store_queued_message(conn, message_id, firm_id, conversation_id, body, user,
                                            send_at=send_at, cancel_on_reply=cancel_on_reply)
    except BaseException:
        await _release_quietly(gate, ident)
        raise
    return message_json(stored), True, message_id


async def _wait_for_message(conn: Any, firm_id: int, message_id: int) -> Any | None:
    """The duplicated request's row, waiting briefly while its insert is under way."""
    deadline = time.monotonic() + DUPLICATE_ROW_WAIT_S
    pause = 0.005
    while True:
        row = await queries.fetch_message(conn, firm_id, message_id)
        if row is not None or time.monotonic() >= deadline:
            return row
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.1)


async def _release_quietly(gate: Any, ident: dict[str, Any]) -> None:
    try:
        await gate.release(**ident)
    except redis.exceptions.RedisError:
        log.warning("send_gate_release_failed")
