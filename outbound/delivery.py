"""Delivering: a drain job works one lane of one endpoint through its due deliveries.

Each delivery is claimed (`delivering`, with a lease), signed, POSTed, and its attempt
logged with the delivery's next state in one statement (retries.py decides it). The
webhook-id is `msg_<event id>`: the same on every retry and replay of that event to that
endpoint. A drain stops when nothing is due (after lingering a moment, in case the
dispatcher hands it the endpoint's next event: no new job per event under a steady
stream), when the endpoint is disabled or slowed, or when its time budget is spent (then its actor hands the lane on to a new job, so one
endpoint's backlog never holds a worker for long).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import structlog

import events
from outbound import client, lanes, queries, retries, signing, whsec
from shared import metrics
from shared.deps import Deps

log = structlog.get_logger(__name__)

DRAIN_BUDGET_S = 20.0
ENDPOINT_REFRESH_S = 1.0
CLAIM_BATCH = 10  # deliveries claimed at a time by a lane that is getting answers (sent one by one)
LINGER_S = 0.5  # how long a drain that delivered something waits for the endpoint's next event
# an endpoint failing every attempt for this long is disabled
DISABLE_AFTER_S = 5 * 86400.0


def webhook_id(event_id: int) -> str:
    return f"msg_{event_id}"


@dataclass
class _Endpoint:
    row: Any
    secrets: list[str]
    read_at: float


async def _load_endpoint(deps: Deps, endpoint_id: int) -> _Endpoint | None:
    row = await queries.endpoint_for_delivery(deps.pool, endpoint_id)
    if row is None:
        return None
    key = deps.settings.credentials_key
    signing_secrets = [whsec.unseal(key, row["secret_enc"])]
    if row["previous_enc"]:
        signing_secrets.append(whsec.unseal(key, row["previous_enc"]))
    return _Endpoint(row, signing_secrets, time.monotonic())


@dataclass(frozen=True)
class Drained:
    more: bool  # the budget ran out with work left: hand the lane on now
    next_due_in_s: float | None  # else: when the endpoint's next retry is due, if any


async def drain(deps: Deps, endpoint_id: int, lane: int, token: str) -> Drained:
    """Deliver what is due to the endpoint on this lane, then give the lane back."""
    structlog.contextvars.bind_contextvars(endpoint_id=endpoint_id)
    lease = lanes.lease_s(deps.settings)
    renew_every = lease / 4
    started = renewed = time.monotonic()
    endpoint: _Endpoint | None = None
    # One claim at first: a row claimed behind a request that hangs would wait for it
    # instead of going by the other lane. Once deliveries come back, ten at a time.
    batch = 1
    while True:
        claimed = 0
        while True:
            now = time.monotonic()
            if now - started > DRAIN_BUDGET_S:
                await lanes.release(deps.redis, endpoint_id, lane, token)
                return Drained(True, None)
            if endpoint is None or now - endpoint.read_at > ENDPOINT_REFRESH_S:
                endpoint = await _load_endpoint(deps, endpoint_id)
            if endpoint is None or not endpoint.row["enabled"] or endpoint.row["slowed"]:
                break
            rows = await queries.claim_due(deps.pool, endpoint_id, lease, batch)
            if not rows:
                if claimed and await _linger(deps, endpoint_id):
                    if not await lanes.renew(deps.redis, endpoint_id, lane, token, lease):
                        log.info("webhook_lane_lost", lane=lane)
                        return Drained(False, None)
                    renewed = time.monotonic()
                    continue  # the dispatcher handed us the endpoint's next deliveries
                break
            claimed += len(rows)
            for k, row in enumerate(rows):
                if time.monotonic() - renewed > renew_every:
                    if not await lanes.renew(deps.redis, endpoint_id, lane, token, lease):
                        log.info("webhook_lane_lost", lane=lane)
                        await queries.release_claims(deps.pool, [r["id"] for r in rows[k:]])
                        return Drained(False, None)
                    renewed = time.monotonic()
                if await attempt(deps, endpoint, row):  # disabled or slowed: the rest wait
                    await queries.release_claims(deps.pool, [r["id"] for r in rows[k + 1:]])
                    endpoint = None
                    batch = 1
                    break
            else:
                batch = CLAIM_BATCH
        await lanes.release(deps.redis, endpoint_id, lane, token)
        # Something may have become due between the last claim and the release: look
        # again, and go on if the lane is still free.
        due_in = await queries.after_drain(deps.pool, endpoint_id)
        if due_in is None or due_in > 0 or not claimed:
            # (due now yet nothing claimed: rows locked by another lane's claim; a kick
            # comes back for them shortly)
            return Drained(False, due_in)
        if not await lanes.take_lane(deps.redis, endpoint_id, lane, token, lease):
            return Drained(False, None)
        endpoint = None


# Drains of this process waiting a moment for their endpoint's next event, by endpoint:
# the dispatcher (same process, same loop) hands new deliveries to one instead of a new job.
_lingering: dict[int, asyncio.Event] = {}


async def _linger(deps: Deps, endpoint_id: int) -> bool:
    """Wait up to LINGER_S for the dispatcher to hand this drain its endpoint's next
    deliveries; True if it did. At most half the worker's threads linger at a time, so
    lingering never keeps a new endpoint's drain waiting for a thread."""
    if endpoint_id in _lingering or len(_lingering) >= max(1, deps.settings.worker_threads // 2):
        return False
    event = asyncio.Event()
    _lingering[endpoint_id] = event
    try:
        async with asyncio.timeout(LINGER_S):  # not wait_for: it can swallow a cancel
            await event.wait()
    except TimeoutError:
        pass
    finally:
        _lingering.pop(endpoint_id, None)
    # (read after leaving the registry: a hand-over that raced the timeout still counts)
    return event.is_set()


def hand_to_lingering(endpoint_id: int) -> bool:
    """Give new deliveries of the endpoint to a drain of this process that waits for them;
    False when none waits (the caller starts a drain)."""
    event = _lingering.get(endpoint_id)
    if event is None or event.is_set():
        return False
    event.set()
    return True


async def attempt(deps: Deps, endpoint: _Endpoint, row: Any) -> bool:
    """One attempt of a claimed delivery; True when the endpoint is now disabled or slowed."""
    settings = deps.settings
    payload = signing.body(row["event_type"], row["event_at"], row["event_seq"], row["data"])
    headers = signing.headers(webhook_id(row["event_id"]), datetime.now(timezone.utc), payload, endpoint.secrets)
    result = await client.post(endpoint.row["url"], payload, headers, allow_private=settings.webhooks_allow_private,
                               timeout_s=settings.webhook_timeout_s)
    endpoint_id = row["endpoint_id"]
    if result.outcome == "delivered":
        await queries.record_delivered(deps.pool, row["id"], endpoint_id, row["attempts"], result.status_code,
                                       result.duration_ms, result.excerpt)
        await metrics.incr_grouped(deps.redis, metrics.WEBHOOK_DELIVERIES, outcome="delivered")
        return False
    decision = retries.decide(result.outcome, result.status_code, row["attempts"], settings.webhook_retry_schedule_s,
                              result.retry_after_s)
    disabled = None
    async with deps.pool.acquire() as conn, conn.transaction():
        await queries.record_attempt(conn, row["id"], endpoint_id, row["attempts"], result.outcome,
                                     result.status_code, result.duration_ms, result.excerpt, decision.status,
                                     decision.next_in_s)
        failed = await queries.endpoint_failed(conn, endpoint_id, decision.slow, decision.retry_after_s,
                                               retries.SLOW_MAX_S, DISABLE_AFTER_S)
        reason = decision.disable or ("failing" if failed is not None and failed["expired"] else None)
        if reason:
            disabled = await disable(conn, endpoint_id, reason)
    await metrics.incr_grouped(deps.redis, metrics.WEBHOOK_DELIVERIES, outcome=_metric_outcome(result.outcome))
    log.info("webhook_attempt_failed", event_seq=row["event_seq"], attempt=row["attempts"], outcome=result.outcome,
             status_code=result.status_code, duration_ms=result.duration_ms, next_in_s=decision.next_in_s,
             final=decision.status == "failed")
    if disabled is not None:
        await events.wake(deps.redis, [disabled["firm_id"]])
        return True
    return decision.slow


def _metric_outcome(outcome: str) -> str:
    return outcome if outcome in metrics.WEBHOOK_DELIVERY_OUTCOMES else "connect_error"


async def disable(conn: Any, endpoint_id: int, reason: str) -> Any:
    """Disable the endpoint (in the caller's transaction) and tell the firm by an event."""
    row = await queries.disable_endpoint(conn, endpoint_id, reason)
    if row is not None:
        await events.record(conn, row["firm_id"], "webhook_endpoint.disabled",
                            {"endpoint_id": row["id"], "url": row["url"], "reason": reason,
                             "at": row["disabled_at"]})
        log.warning("webhook_endpoint_disabled", endpoint_id=endpoint_id, reason=reason)
    return row
