"""What the webhook jobs do: apply a delivery status, file an inbound reply, staff review.

Each inbox row is applied exactly once: the job locks the row, does its work and marks it
processed in one transaction, so replays, the sweeper's re-enqueues and a second worker
all find it done. Status callbacks are applied in batches (status_batch.py), which also
lock their messages (FOR UPDATE), so two callbacks for one message apply one after the
other and the status only ever moves forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import asyncpg
import structlog

import events
from consent import ledger as consent
from conversations import feed
from conversations.queries import bump_conversation, upsert_conversation
from conversations.sendable import Decision, decide_for_phone
from shared.broker import enqueue
from shared.deps import Deps
from shared.errors import HttpError
from webhooks import queries
from webhooks.status_batch import apply_status_batch
from webhooks.inbox import sender_phone
from consent.keywords import advanced_opt_out_type, default_help_text, inbound_keyword, reads_like_opt_out
from firms.queries import firm_by_id
from send_pipeline.actors import send_message
from send_pipeline.queries import insert_queued_message
from shared.segments import count_segments

log = structlog.get_logger(__name__)

HELP_REPLY_SENDER = "help_reply"  # sent_by of the automatic HELP answer


# ---- delivery status ---------------------------------------------------------------------


async def _process_inbox_row(
    deps: Deps, inbox_id: int,
    apply: Callable[[asyncpg.Connection, asyncpg.Record, set[int]], Awaitable[str]],
) -> str | None:
    """Run `apply` on one inbox row, once: the row is locked, skipped when already
    processed, and marked processed in the same transaction as its effects (and their
    change-feed events). `apply` adds the firms it wrote events for to its set; their
    streams are woken once the transaction has committed."""
    woken: set[int] = set()
    with structlog.contextvars.bound_contextvars(inbox_id=inbox_id):
        async with deps.pool.acquire() as conn:
            async with conn.transaction():
                inbox = await queries.lock_inbox(conn, inbox_id)
                if inbox is None or inbox["processed_at"] is not None:
                    return None
                outcome = await apply(conn, inbox, woken)
                await queries.mark_processed(conn, inbox_id, outcome)
        await events.wake(deps.redis, woken)
        return outcome


async def apply_status(deps: Deps, inbox_id: int) -> str | None:
    """Apply one status callback (a batch of one, status_batch.py); the outcome recorded on
    the inbox row, or None when it was processed already (a job holding it is waited for)."""
    return (await apply_status_batch(deps, [inbox_id], wait=True)).get(inbox_id)


# ---- inbound replies ---------------------------------------------------------------------


async def handle_inbound(deps: Deps, inbox_id: int) -> str | None:
    """File one inbound text in its conversation; returns the outcome recorded on the row.

    A HELP/INFO that Twilio's Advanced Opt-Out did not answer gets the firm's help text,
    stored as a queued outbound message in the thread and sent by the send job."""
    replies: list[int] = []
    outcome = await _process_inbox_row(deps, inbox_id,
                                       lambda conn, inbox, woken: _file_inbound(conn, inbox, replies, woken))
    for message_id in replies:
        try:
            await enqueue(send_message, message_id)
        except Exception as exc:  # the row is stored queued: the sweeper re-enqueues it
            log.warning("help_reply_enqueue_failed", message_id=message_id, error=f"{type(exc).__name__}: {exc}")
    return outcome


async def _file_inbound(conn: asyncpg.Connection, inbox: asyncpg.Record, replies: list[int], woken: set[int]) -> str:
    params: dict[str, str] = inbox["params"]
    sid = inbox["message_sid"]
    structlog.contextvars.bind_contextvars(message_sid=sid)
    firm = await queries.firm_by_number(conn, (params.get("To") or "").strip(), params.get("MessagingServiceSid"))
    if firm is None:
        log.warning("inbound_unrouted", to=params.get("To"))
        return "unrouted"
    firm_id = firm["id"]
    structlog.contextvars.bind_contextvars(firm_id=firm_id)
    phone = sender_phone(params.get("From"), firm["default_region"])
    if phone is None:
        log.warning("inbound_from_unusable_sender")
        return "unusable_sender"
    body = params.get("Body") or ""
    conversation_id, _ = await upsert_conversation(conn, firm_id, phone)
    message_id = await queries.insert_inbound_message(
        conn, firm_id=firm_id, conversation_id=conversation_id, body=body,
        twilio_status=inbox["twilio_status"] or "received", twilio_sid=sid,
        segments=_segments(params.get("NumSegments")), received_at=inbox["received_at"],
    )
    if message_id is None:
        log.info("inbound_already_filed", conversation_id=conversation_id)
        return "duplicate"
    await bump_conversation(conn, conversation_id)
    log.info("inbound_filed", conversation_id=conversation_id, message_id=message_id)
    woken.add(firm_id)
    # the reply, and its conversation's new last message (and notice), on the feed
    await feed.message_changed(conn, message_id, "message.received")
    keyword = inbound_keyword(params)
    if keyword is not None and keyword.kind == "help" and advanced_opt_out_type(params) is None:
        reply_id = await _queue_help_reply(conn, firm_id, phone, conversation_id)
        if reply_id is not None:
            await feed.message_changed(conn, reply_id, "message.created")
            replies.append(reply_id)
            return "help_replied"
    if keyword is not None:
        return "keyword"  # its consent change was applied with the inbox row
    rule = reads_like_opt_out(body)
    if rule is not None and await queries.attach_review_message(conn, firm_id, phone, message_id):
        # sends were paused in the webhook's transaction; this names the reply under review
        await queries.add_flag_event(conn, firm_id, phone, "review_opened", reason=rule, message_id=message_id)
        log.info("review_opened", rule=rule, message_id=message_id)
        return "review_opened"
    return "filed"


async def _queue_help_reply(conn: asyncpg.Connection, firm_id: int, phone: str, conversation_id: int) -> int | None:
    """Store the firm's help text as a queued message in the thread, at most once a day
    per phone and only to a sendable phone; its id, or None when none is due."""
    if (await decide_for_phone(conn, firm_id, phone)).code is not None:
        return None
    firm = await firm_by_id(conn, firm_id)
    text = firm["help_text"] or default_help_text(firm["name"])
    message_id = await queries.next_message_id(conn)
    if not await queries.take_help_reply_slot(conn, firm_id, phone, message_id):
        log.info("help_reply_skipped", reason="replied_within_a_day")
        return None
    await insert_queued_message(conn, message_id, firm_id, conversation_id, text, HELP_REPLY_SENDER,
                                count_segments(text))
    log.info("help_reply_queued", message_id=message_id)
    return message_id


def _segments(raw: str | None) -> int | None:
    if raw and raw.strip().isdigit() and 1 <= int(raw) <= 1000:
        return int(raw)
    return None


# ---- staff review of a possible opt-out ----------------------------------------------------

DECISIONS = ("opt_out", "keep")


@dataclass(frozen=True)
class ReviewResult:
    conversation_id: int
    decision: str
    decision_after: Decision

    def as_json(self) -> dict[str, Any]:
        notice = self.decision_after.notice
        return {
            "conversation_id": self.conversation_id,
            "decision": self.decision,
            "can_send": self.decision_after.sendable,
            "notice": notice.as_json() if notice else None,
        }


async def decide_review(deps: Deps, firm_id: int, conversation_id: int, decision: str, user: str) -> ReviewResult:
    """Staff's answer to a paused reply: `opt_out` (a consent event `staff:<user>`) or
    `keep` (sends resume). Both audited with the user and the reviewed message."""
    if decision not in DECISIONS:
        raise HttpError(400, "bad_decision", "decision must be \"opt_out\" or \"keep\".")
    async with deps.pool.acquire() as conn:
        async with conn.transaction():
            conversation = await queries.conversation_of_firm(conn, firm_id, conversation_id)
            if conversation is None:
                raise HttpError(404, "not_found", "No such conversation.")
            phone = conversation["phone_e164"]
            flags = await queries.lock_flags(conn, firm_id, phone)
            if flags is None or not flags["review_pending"]:
                raise HttpError(409, "no_review_pending", "There is no reply waiting for review in this conversation.")
            reviewed = flags["review_message_id"]
            if decision == "opt_out":
                await consent.opt_out(conn, firm_id, phone, f"staff:{user}")
            await queries.close_review(conn, firm_id, phone)
            await queries.add_flag_event(conn, firm_id, phone, f"review_{decision}", actor=user, message_id=reviewed)
            if decision == "keep":  # (an opt-out's conversation event comes with its consent change)
                await feed.phone_changed(conn, phone, firm_id)
            after = await decide_for_phone(conn, firm_id, phone)
    await events.wake(deps.redis, [firm_id])
    log.info("review_decided", conversation_id=conversation_id, decision=decision)
    return ReviewResult(conversation_id, decision, after)
