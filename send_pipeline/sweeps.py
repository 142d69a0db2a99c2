"""Sweep tasks of this package: name -> async fn(deps). Run by `leadsms sweeper`.

- `requeue_stale_queued`: a `queued` row more than STALE_AFTER_S past due lost its job
  (the enqueue failed, or a killed worker held it: dramatiq's Redis broker gives those
  back only after its heartbeat timeout). It is enqueued again; the claim makes a
  duplicate job harmless.
- `reconcile_stale_sends`: a `sending` row whose outcome is unknown (an ambiguous answer,
  or a worker that died during the call). Before anything is retried, Twilio's Messages
  list for that To/From is searched for this body created inside the claim's window
  (after the claim, before its call's timeout ran out: a later send of the same text to
  the same phone is not adopted): found → the sid is adopted (`sent`). Not found, a status
  callback already stored for the message (`?m=` names it, and it carries the sid: Twilio
  has it, its list lags) gives the sid instead; neither → back to `queued`. A row with a
  sid is never sent again. A row is only looked at once no Twilio call for it can still
  be in flight: an ambiguous answer marks it (`next_attempt_at`, STALE_AFTER_S later,
  giving Twilio's list time to catch up), otherwise its claim must be older than the
  client's timeout. The list calls run concurrently (LIST_CONCURRENCY at most), and each
  To/From is settled as soon as its list answers, so the sweeper's time budget cutting a
  pass short loses nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import asyncpg
import structlog

import events
from conversations import feed
from firms.credentials import CredentialsUnavailable
from firms.pauses import twilio_for_firm
from send_pipeline import queries
from send_pipeline.actors import send_message
from send_pipeline.quiet_hours import decide_for
from send_pipeline.sending import MAX_ATTEMPTS
from shared.broker import enqueue
from shared.deps import Deps
from shared.twilio import MessageRecord, TwilioError

log = structlog.get_logger(__name__)

BATCH = 500
# Twilio's date_created has one-second resolution, and its clock is not ours.
CLOCK_SKEW = timedelta(seconds=3)
# A claim older than the Twilio client's timeout plus this has no call in flight.
IN_FLIGHT_MARGIN_S = 2.0
# How many of Twilio's newest messages per To/From are searched.
LIST_LIMIT = 100
# Twilio list calls in flight at once: one slow answer no longer holds up every other pair,
# and a pass with many stale sends does not open hundreds of requests to Twilio.
LIST_CONCURRENCY = 8
ENQUEUE_CONCURRENCY = 8


async def _enqueue_all(ids: list[int]) -> None:
    for start in range(0, len(ids), ENQUEUE_CONCURRENCY):
        await asyncio.gather(*(enqueue(send_message, i) for i in ids[start:start + ENQUEUE_CONCURRENCY]))


async def requeue_stale_queued(deps: Deps) -> int:
    """Re-enqueue `queued` messages whose job looks lost; returns how many."""
    ids = await queries.touch_stale_queued(deps.pool, deps.settings.stale_after_s, BATCH,
                                           deps.settings.twilio_account_sid)
    if ids:
        await _enqueue_all(ids)
        log.info("stale_queued_requeued", count=len(ids))
    return len(ids)


def in_flight_limit_s(settings: Any) -> float:
    """How old a claim must be before no Twilio call for it can still be running."""
    return max(float(settings.stale_after_s), settings.twilio_timeout_s + IN_FLIGHT_MARGIN_S)


def claim_window_end(claimed_at: datetime, twilio_timeout_s: float) -> datetime:
    """The latest creation time at Twilio a claim's own call can have: the call starts
    after the claim and gives up after the client's timeout (`TWILIO_TIMEOUT_S`)."""
    return claimed_at + timedelta(seconds=twilio_timeout_s + IN_FLIGHT_MARGIN_S)


def find_match(records: list[MessageRecord], body: str, claimed_at: datetime, taken: set[str],
               twilio_timeout_s: float) -> MessageRecord | None:
    """The oldest message at Twilio with this body, created inside the claim's window
    (from the claim to the end of its call, widened by the clock skew), whose sid no row
    of ours holds yet. A later send of the same text to the same phone is not this one."""
    floor = claimed_at - CLOCK_SKEW
    ceiling = claim_window_end(claimed_at, twilio_timeout_s) + CLOCK_SKEW
    for record in reversed(records):  # Twilio lists newest first
        if record.sid in taken or record.body != body:
            continue
        if record.date_created is not None and not floor <= record.date_created <= ceiling:
            continue
        return record
    return None


async def _write_with_event(deps: Deps, row: Any, write: Callable[..., Awaitable[bool]], *args: Any) -> bool:
    """`write(conn, message id, *args)` and, when it changed the row, the message's
    `message.status` event in the same transaction; the firm's streams woken after."""
    async with deps.pool.acquire() as conn, conn.transaction():
        done = await write(conn, row["id"], *args)
        if done:
            await feed.message_changed(conn, row["id"])
    if done:
        await events.wake(deps.redis, [row["firm_id"]])
    return done


async def _adopt(deps: Deps, row: Any, sid: str, twilio_status: str | None, from_number: str | None = None) -> bool:
    try:
        return await _write_with_event(deps, row, queries.adopt_sid, row["claimed_at"], sid, twilio_status, from_number)
    except asyncpg.UniqueViolationError:  # its own worker (or a callback) stored it meanwhile
        return False


async def reconcile_stale_sends(deps: Deps) -> dict[str, int] | int:
    """Resolve `sending` rows whose outcome is unknown; returns counts by outcome.

    One Twilio list call per To/From, at most LIST_CONCURRENCY at once; each pair is
    resolved and its re-queued rows enqueued as soon as its list answers, so a pass cut
    short by the sweeper's budget keeps what it finished (the rest is due next pass)."""
    rows = await queries.stale_sending(deps.pool, in_flight_limit_s(deps.settings), BATCH)
    if not rows:
        return 0
    counts: Counter[str] = Counter()
    pending = [r for r in rows if r["twilio_sid"] is None]
    for row in rows:
        if row["twilio_sid"] is not None and await _write_with_event(deps, row, queries.settle_sending_with_sid, row["claimed_at"]):
            counts["settled"] += 1

    # A send from a number is looked for by To and the From recorded at its claim (the
    # firm's number then, whatever it is now); a Messaging Service send by To alone
    # (Twilio chose the From), bounded to the claim's window. Each with the firm's account.
    pairs: dict[tuple[str, str | None, str | None, str | None], list[Any]] = {}
    for row in pending:
        from_ = None if row["messaging_service_sid"] else row["from_phone"]
        pairs.setdefault((row["to_phone"], from_, row["twilio_account_sid"], row["twilio_auth_token_enc"]),
                         []).append(row)
    lists = asyncio.Semaphore(LIST_CONCURRENCY)

    async def reconcile(to: str, from_: str | None, account_sid: str | None, token_enc: str | None,
                        group: list[Any]) -> None:
        """One Twilio list per To/From (By To alone for a Messaging Service send, whose
        sender Twilio chose), with the account the firm sends with."""
        async with lists:
            try:
                twilio = twilio_for_firm(deps, account_sid, token_enc)
                records = await twilio.list_messages(to=to, from_=from_, limit=LIST_LIMIT)
            except CredentialsUnavailable:
                counts["unreachable"] += len(group)
                return
            except TwilioError as exc:  # cannot look: decide nothing, next pass asks again
                log.warning("reconcile_list_failed", kind=exc.kind, status=exc.status, code=exc.code)
                counts["unreachable"] += len(group)
                return
        await _resolve_pair(deps, records, group, counts)

    async with asyncio.TaskGroup() as group_tasks:  # one failing pair cancels the rest
        for (to, from_, account_sid, token_enc), group in pairs.items():
            group_tasks.create_task(reconcile(to, from_, account_sid, token_enc, group))
    return {k: v for k, v in counts.items() if v}


async def _resolve_pair(deps: Deps, records: list[MessageRecord], group: list[Any], counts: Counter[str]) -> None:
    """Adopt, give up on or re-queue each row of one To/From, given Twilio's list for it."""
    taken = await queries.known_sids(deps.pool, [r.sid for r in records]) if records else set()
    requeued: list[int] = []
    for row in sorted(group, key=lambda r: r["claimed_at"]):
        match = find_match(records, row["body"], row["claimed_at"], taken, deps.settings.twilio_timeout_s)
        if match is not None:
            if await _adopt(deps, row, match.sid, match.status, match.from_ or None):
                taken.add(match.sid)
                counts["adopted"] += 1
                log.info("send_reconciled_adopted", message_id=row["id"], message_sid=match.sid, found_by="list")
        elif (sid := await queries.callback_sid(deps.pool, row["id"])) is not None:
            # Twilio's list lags, but its callback for this message is stored already.
            if await _adopt(deps, row, sid, None):
                taken.add(sid)
                counts["adopted"] += 1
                log.info("send_reconciled_adopted", message_id=row["id"], message_sid=sid, found_by="callback")
        elif row["attempts"] >= MAX_ATTEMPTS:
            if await _write_with_event(deps, row, queries.mark_failed, row["claimed_at"], None,
                                       f"gave up after {row['attempts']} attempts without an answer from Twilio"):
                counts["failed"] += 1
                log.warning("send_gave_up", message_id=row["id"], attempts=row["attempts"])
        elif await _write_with_event(deps, row, queries.return_to_queued, row["claimed_at"]):
            requeued.append(row["id"])
            counts["requeued"] += 1
            log.info("send_reconciled_requeued", message_id=row["id"], attempts=row["attempts"])
    if requeued:
        await _enqueue_all(requeued)


async def release_due_scheduled(deps: Deps) -> dict[str, int] | int:
    """Scheduled sends whose send_at has come: re-checked against quiet hours now (no
    reply grace: the window may have changed since scheduling → `blocked`, reason
    `quiet_hours`), the rest `queued` and enqueued. The sendable decision is re-checked
    by the claim, in the same statement that takes the row (opted out since → `blocked`).

    The wait lived in PostgreSQL, not in a dramatiq delay; rows are locked SKIP LOCKED so
    two sweepers never release one twice, and the claim makes a duplicate job harmless."""
    now = datetime.now(timezone.utc)
    async with deps.pool.acquire() as conn:
        async with conn.transaction():
            rows = await queries.due_scheduled(conn, BATCH)
            if not rows:
                return 0
            closed = {r["id"] for r in rows if not decide_for(r, now, grace=None).allowed}
            due = [r["id"] for r in rows if r["id"] not in closed]
            blocked = await queries.block_scheduled(conn, sorted(closed), "quiet_hours") if closed else []
            released = await queries.release_scheduled(conn, due) if due else []
            firms = {r["firm_id"] for r in rows if r["id"] in set(blocked) | set(released)}
            for message_id in (*blocked, *released):
                await feed.message_changed(conn, message_id)
    await events.wake(deps.redis, firms)
    if released:
        await _enqueue_all(released)
    for message_id in blocked:
        log.info("scheduled_send_blocked", message_id=message_id, reason="quiet_hours")
    log.info("scheduled_sends_released", count=len(released), blocked=len(blocked))
    return {k: v for k, v in {"released": len(released), "blocked": len(blocked)}.items() if v}


SWEEPS: dict = {
    "release_due_scheduled": release_due_scheduled,
    "requeue_stale_queued": requeue_stale_queued,
    "reconcile_stale_sends": reconcile_stale_sends,
}
