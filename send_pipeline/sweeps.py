"""Sweep tasks of this package: name -> async fn(deps). Run by `leadsms sweeper`.

- `requeue_stale_queued`: a `queued` row more than STALE_AFTER_S past due lost its job
  (the enqueue failed, or a killed worker held it: dramatiq's Redis broker gives those
  back only after its heartbeat timeout). It is enqueued again; the claim makes a
  duplicate job harmless.
- `reconcile_stale_sends`: a `sending` row whose outcome is unknown (an ambiguous answer,
  or a worker that died during the call). Before anything is retried, Twilio's Messages
  list for that To/From is searched for this body created after the claim: found → the
  sid is adopted (`sent`); not found → back to `queued`. A row with a sid is never sent
  again. A row is only looked at once no Twilio call for it can still be in flight: an
  ambiguous answer marks it (`next_attempt_at`, STALE_AFTER_S later, giving Twilio's list
  time to catch up), otherwise its claim must be older than the client's timeout.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

import asyncpg
import structlog

import events
from conversations import feed
from send_pipeline import queries
from send_pipeline.actors import send_message
from send_pipeline.sending import MAX_ATTEMPTS
from shared.broker import enqueue
from shared.deps import Deps
from shared.twilio import DEFAULT_TIMEOUT_S, MessageRecord, TwilioError

log = structlog.get_logger(__name__)

BATCH = 500
# Twilio's date_created has one-second resolution, and its clock is not ours.
CLOCK_SKEW = timedelta(seconds=3)
# A claim older than the Twilio client's timeout plus this has no call in flight.
IN_FLIGHT_MARGIN_S = 2.0
# How many of Twilio's newest messages per To/From are searched.
LIST_LIMIT = 100
ENQUEUE_CONCURRENCY = 8


async def _enqueue_all(ids: list[int]) -> None:
    for start in range(0, len(ids), ENQUEUE_CONCURRENCY):
        await asyncio.gather(*(enqueue(send_message, i) for i in ids[start:start + ENQUEUE_CONCURRENCY]))


async def requeue_stale_queued(deps: Deps) -> int:
    """Re-enqueue `queued` messages whose job looks lost; returns how many."""
    ids = await queries.touch_stale_queued(deps.pool, deps.settings.stale_after_s, BATCH)
    if ids:
        await _enqueue_all(ids)
        log.info("stale_queued_requeued", count=len(ids))
    return len(ids)


def in_flight_limit_s(stale_after_s: float) -> float:
    """How old a claim must be before no Twilio call for it can still be running."""
    return max(float(stale_after_s), DEFAULT_TIMEOUT_S + IN_FLIGHT_MARGIN_S)


def find_match(records: list[MessageRecord], body: str, claimed_at: datetime, taken: set[str]) -> MessageRecord | None:
    """The oldest message at Twilio with this body, created after the claim (less the
    clock skew), whose sid no row of ours holds yet."""
    floor = claimed_at - CLOCK_SKEW
    for record in reversed(records):  # Twilio lists newest first
        if record.sid in taken or record.body != body:
            continue
        if record.date_created is not None and record.date_created < floor:
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


async def reconcile_stale_sends(deps: Deps) -> dict[str, int] | int:
    """Resolve `sending` rows whose outcome is unknown; returns counts by outcome."""
    rows = await queries.stale_sending(deps.pool, in_flight_limit_s(deps.settings.stale_after_s), BATCH)
    if not rows:
        return 0
    counts = {"adopted": 0, "requeued": 0, "settled": 0, "failed": 0, "unreachable": 0}
    pending = [r for r in rows if r["twilio_sid"] is None]
    for row in rows:
        if row["twilio_sid"] is not None and await _write_with_event(deps, row, queries.settle_sending_with_sid, row["claimed_at"]):
            counts["settled"] += 1

    pairs: dict[tuple[str, str], list[Any]] = {}
    for row in pending:
        pairs.setdefault((row["to_phone"], row["from_phone"]), []).append(row)
    requeued: list[int] = []
    for (to, from_), group in pairs.items():
        try:
            records = await deps.twilio.list_messages(to=to, from_=from_, limit=LIST_LIMIT)
        except TwilioError as exc:  # cannot look: decide nothing, next pass asks again
            log.warning("reconcile_list_failed", kind=exc.kind, status=exc.status, code=exc.code)
            counts["unreachable"] += len(group)
            continue
        taken = await queries.known_sids(deps.pool, [r.sid for r in records]) if records else set()
        for row in sorted(group, key=lambda r: r["claimed_at"]):
            match = find_match(records, row["body"], row["claimed_at"], taken)
            if match is not None:
                try:
                    adopted = await _write_with_event(deps, row, queries.adopt_sid, row["claimed_at"], match.sid, match.status)
                except asyncpg.UniqueViolationError:  # its own worker stored it meanwhile
                    adopted = False
                if adopted:
                    taken.add(match.sid)
                    counts["adopted"] += 1
                    log.info("send_reconciled_adopted", message_id=row["id"], message_sid=match.sid)
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
    return {k: v for k, v in counts.items() if v}


SWEEPS: dict = {
    "requeue_stale_queued": requeue_stale_queued,
    "reconcile_stale_sends": reconcile_stale_sends,
}
