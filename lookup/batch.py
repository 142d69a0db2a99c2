"""Line types for many phones at once (intake's batches), still one paid lookup per phone.

`lookup_line_types(phones)` does for each phone what `service.lookup_line_type` does, with
the per-phone round trips folded together: one read of the cache for every phone, the
per-phone Redis locks taken and released in one pipeline each, the Twilio calls run
concurrently (at most `LOOKUP_CONCURRENCY` at a time), and every answer stored in one
transaction (the cache rows, the invalid marks, the change feed's conversation events).

One paid lookup per phone holds as before: a fresh cached answer is used; a phone whose
lock another worker holds is left to it (its answer lands in the cache); the lock is taken
before the cache is read again, so two workers never both ask Twilio.

A phone whose lookup fails transiently (Twilio 429/5xx, a timeout) is returned to the
caller, which retries it alone with backoff (`lookup_line_type` job); a permanent refusal
is logged, as one lookup's is.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Sequence

import structlog

import events
from conversations import feed
from conversations.queries import conversations_of_phones
from lookup import queries
from lookup.service import (
    LOCK_TTL_MS,
    OBSERVE_HORIZON_S,
    _auth_alarm,
    _jsonable,
    is_auth_failure,
    lock_key,
    release_lock_in,
    ttl_seconds,
)
from shared import metrics
from shared.deps import Deps
from shared.errors import PermanentError
from shared.twilio import LineTypeResult, TwilioError, TwilioPermanent

log = structlog.get_logger(__name__)


@dataclass
class LookupBatch:
    made: list[str] = field(default_factory=list)  # asked Twilio and stored
    cached: list[str] = field(default_factory=list)  # fresh in the cache already
    elsewhere: list[str] = field(default_factory=list)  # another worker holds the lock
    retry: list[str] = field(default_factory=list)  # transient failure: retry alone with backoff
    refused: list[str] = field(default_factory=list)  # permanent failure: not retried


async def lookup_line_types(deps: Deps, phones: Sequence[str], *, concurrency: int | None = None) -> LookupBatch:
    """Look up every phone not freshly cached, `concurrency` (default LOOKUP_CONCURRENCY) at a time."""
    if deps.twilio is None:
        raise PermanentError("no Twilio client in these deps", code="no_twilio")
    out = LookupBatch()
    wanted = list(dict.fromkeys(phones))
    if not wanted:
        return out
    ttl = ttl_seconds(deps)
    cached = await queries.cached_lines(deps.pool, wanted, ttl)
    out.cached = [p for p in wanted if p in cached and cached[p]["fresh"]]
    todo = [p for p in wanted if p not in out.cached]
    tokens = {p: uuid.uuid4().hex for p in todo}
    locked: list[str] = []
    if todo:
        pipe = deps.redis.pipeline(transaction=False)
        for p in todo:
            pipe.set(lock_key(p), tokens[p], nx=True, px=LOCK_TTL_MS)
        got = await pipe.execute()
        locked = [p for p, ok in zip(todo, got) if ok]
        out.elsewhere = [p for p, ok in zip(todo, got) if not ok]
    try:
        if locked:
            again = await queries.cached_lines(deps.pool, locked, ttl)  # filled while we took the locks?
            filled = [p for p in locked if p in again and again[p]["fresh"]]
            out.cached += filled
            ask = [p for p in locked if p not in filled]
            answers = await _ask_twilio_many(deps, ask, concurrency or deps.settings.lookup_concurrency, out)
            if answers:
                stale_since = {p: again[p]["checked_at"] + timedelta(seconds=ttl) if p in again else None
                               for p in answers}
                await _store_answers(deps, answers, stale_since)
                out.made = list(answers)
    finally:
        if locked:
            pipe = deps.redis.pipeline(transaction=False)
            for p in locked:
                release_lock_in(pipe, p, tokens[p])
            await pipe.execute()
    if out.cached:
        await metrics.record_lookup(deps.redis, "cache_hit", len(out.cached))
    log.info("line_types_looked_up", made=len(out.made), cached=len(out.cached), elsewhere=len(out.elsewhere),
             retry=len(out.retry), refused=len(out.refused))
    return out


async def _ask_twilio_many(deps: Deps, phones: list[str], concurrency: int,
                           out: LookupBatch) -> dict[str, LineTypeResult]:
    gate = asyncio.Semaphore(max(1, concurrency))
    assert deps.twilio is not None
    twilio = deps.twilio

    async def one(phone: str) -> LineTypeResult | TwilioError:
        async with gate:
            try:
                return await twilio.lookup_line_type(phone)
            except TwilioError as exc:
                return exc

    results = await asyncio.gather(*(one(p) for p in phones))
    answers: dict[str, LineTypeResult] = {}
    failed = 0
    for phone, result in zip(phones, results):
        if not isinstance(result, TwilioError):
            answers[phone] = result
            continue
        failed += 1
        if isinstance(result, TwilioPermanent) and is_auth_failure(result):
            await _auth_alarm(deps, result)
            out.refused.append(phone)
        elif isinstance(result, TwilioPermanent):
            log.warning("lookup_refused", phone=phone, status=result.status, twilio_code=result.code,
                        detail=result.detail)
            out.refused.append(phone)
        else:
            log.info("lookup_not_answered", phone=phone, kind=result.kind, status=result.status,
                     twilio_code=result.code)
            out.retry.append(phone)
    if failed:
        await metrics.record_lookup(deps.redis, "failed", failed)
    return answers


async def _store_answers(deps: Deps, answers: dict[str, LineTypeResult], stale_since: dict) -> None:
    """Every answer in one transaction: the cache, the invalid marks, the feed."""
    started = time.monotonic()
    phones = list(answers)
    async with deps.pool.acquire() as conn, conn.transaction():
        await queries.store_lines(conn, phones, [answers[p].valid for p in phones],
                                  [answers[p].line_type for p in phones], [answers[p].carrier for p in phones],
                                  [json.dumps(_jsonable(answers[p].raw)) for p in phones])
        valid = [p for p in phones if answers[p].valid]
        invalid = [p for p in phones if not answers[p].valid]
        await queries.unmark_leads_invalid_many(conn, valid)
        await queries.mark_leads_invalid_many(conn, invalid)
        waited = await queries.waiting_leads_ages_many(conn, phones, [stale_since[p] for p in phones],
                                                       OBSERVE_HORIZON_S)
        # the line type is in every firm's conversation shape (and may change can_send)
        convs = await conversations_of_phones(conn, phones)
        woken = await feed.messages_changed(conn, [], [(r["firm_id"], r["id"]) for r in convs])
    await events.wake(deps.redis, woken)
    await metrics.record_lookup(deps.redis, "made", len(phones))
    await metrics.observe_line_type_latencies(deps.redis, waited)
    log.debug("line_types_stored", phones=len(phones), ms=round((time.monotonic() - started) * 1000, 1))
