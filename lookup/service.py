"""Twilio Lookup v2 (`line_type_intelligence`), paid once per phone.

One paid lookup per phone, across firms and under concurrency: the cache (`phone_lines`)
answers first; a miss takes a per-phone Redis lock (SET NX PX) and checks the cache
again under it before calling Twilio. A caller that finds the lock held does not wait
for it: the holder is writing the answer everyone needs. An answer younger than
`LOOKUP_TTL_DAYS` is reused; `force` (Twilio's 30006 asks for a fresh look) still reuses
one younger than `FORCE_MIN_AGE_S`, so a burst of forced refreshes costs one call.

Errors are the Twilio client's typed ones. Not-received and ambiguous ones (429,
refused, timeout, 5xx) are transient: the actor retries them with backoff. Permanent
ones (other 4xx) are not retried; an authentication failure is logged once, loudly,
per `AUTH_ALARM_S` across all workers (the same bad credentials fail every lookup).

The lazy lookup (`lazy_line_type`) serves thread open: it waits at most
`LAZY_LOOKUP_WAIT_MS`, then answers "unknown" (None) and lets the lookup finish in the
background, where it fills the cache for next time. A lazy lookup that fails is
remembered for `LAZY_FAILURE_TTL_S` (in Redis, so for every web process): thread opens
within it answer "unknown" at once instead of calling a failing Lookup inline again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

import events
from conversations import feed
from lookup import queries
from shared import metrics
from shared.deps import Deps
from shared.errors import PermanentError
from shared.twilio import TwilioError, TwilioPermanent

log = structlog.get_logger(__name__)

LOCK_TTL_MS = 30_000  # longer than the Twilio client's 10 s timeout
FORCE_MIN_AGE_S = 60.0
AUTH_ALARM_S = 3600
AUTH_ALARM_KEY = "leadsms:lookup:auth_failed"
POLL_INTERVAL_S = 0.05
# How long thread open stops asking Lookup about a phone after a lazy lookup failed.
LAZY_FAILURE_TTL_S = 60
# Intake-to-line-type latency is observed for signups at most this old (an imported lead
# whose line is first needed a year later is not waiting on intake).
OBSERVE_HORIZON_S = 86400.0

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class PhoneLine:
    phone_e164: str
    valid: bool
    line_type: str | None
    carrier: str | None
    checked_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> "PhoneLine":
        return cls(row["phone_e164"], row["valid"], row["line_type"], row["carrier"], row["checked_at"])


def ttl_seconds(deps: Deps) -> float:
    return deps.settings.lookup_ttl_days * 86400.0


def lock_key(phone_e164: str) -> str:
    return f"leadsms:lookup:lock:{phone_e164}"


def release_lock_in(pipe: Any, phone_e164: str, token: str) -> None:
    """Queue the release of the phone's lock (if still `token`'s) on a Redis pipeline."""
    pipe.eval(_RELEASE, 1, lock_key(phone_e164), token)


def failed_key(phone_e164: str) -> str:
    return f"leadsms:lookup:lazy_failed:{phone_e164}"


async def lookup_line_type(deps: Deps, phone_e164: str, *, force: bool = False,
                           observe_intake: bool = True) -> PhoneLine | None:
    """The line of `phone_e164`, from the cache or one Twilio call.

    None when another worker holds the phone's lock (its answer lands in the cache).
    Raises the Twilio client's typed errors. `observe_intake`: record, for the signups
    this answer resolves, their time from intake to a known line type.
    """
    max_age = FORCE_MIN_AGE_S if force else ttl_seconds(deps)
    row = await queries.fresh_line(deps.pool, phone_e164, max_age)
    if row is not None:
        await metrics.record_lookup(deps.redis, "cache_hit")
        return PhoneLine.from_row(row)
    key, token = lock_key(phone_e164), uuid.uuid4().hex
    if not await deps.redis.set(key, token, nx=True, px=LOCK_TTL_MS):
        log.info("lookup_in_progress_elsewhere", phone=phone_e164)
        return None
    try:
        row = await queries.cached_line(deps.pool, phone_e164, max_age)  # filled while we took the lock?
        if row is not None and row["fresh"]:
            await metrics.record_lookup(deps.redis, "cache_hit")
            return PhoneLine.from_row(row)
        # The signups this answer resolves: those that came since the cache went stale
        # (earlier ones were answered from it at intake, and counted there).
        stale_since = row["checked_at"] + timedelta(seconds=ttl_seconds(deps)) if row is not None else None
        return await _ask_twilio(deps, phone_e164, observe_since=stale_since, observe=observe_intake)
    finally:
        await deps.redis.eval(_RELEASE, 1, key, token)


async def _ask_twilio(deps: Deps, phone_e164: str, *, observe_since: datetime | None, observe: bool) -> PhoneLine:
    if deps.twilio is None:
        raise PermanentError("no Twilio client in these deps", code="no_twilio")
    started = time.monotonic()
    try:
        result = await deps.twilio.lookup_line_type(phone_e164)
    except TwilioError as exc:
        await metrics.record_lookup(deps.redis, "failed")
        if isinstance(exc, TwilioPermanent) and is_auth_failure(exc):
            await _auth_alarm(deps, exc)
        elif isinstance(exc, TwilioPermanent):
            log.warning("lookup_refused", phone=phone_e164, status=exc.status, twilio_code=exc.code, detail=exc.detail)
        else:
            log.info("lookup_not_answered", phone=phone_e164, kind=exc.kind, status=exc.status, twilio_code=exc.code)
        raise
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await queries.store_line(conn, phone_e164, valid=result.valid, line_type=result.line_type,
                                       carrier=result.carrier, raw=_jsonable(result.raw))
        if result.valid:
            changed = await queries.unmark_leads_invalid(conn, phone_e164)
        else:
            changed = await queries.mark_leads_invalid(conn, phone_e164)
        waited = (await queries.waiting_leads_age_s(conn, phone_e164, observe_since, OBSERVE_HORIZON_S)
                  if observe else [])
        # the line type is in every firm's conversation shape (and may change can_send)
        woken = await feed.phone_changed(conn, phone_e164)
    await events.wake(deps.redis, woken)
    await metrics.record_lookup(deps.redis, "made")
    for seconds in waited:
        await metrics.observe_line_type_latency(deps.redis, seconds)
    log.info("line_type_looked_up", phone=phone_e164, valid=result.valid, line_type=result.line_type,
             leads_changed=changed, ms=round((time.monotonic() - started) * 1000, 1))
    return PhoneLine.from_row(row)


async def record_landline(conn: asyncpg.Connection, phone_e164: str) -> None:
    """Twilio refused a send with 21614 (not a mobile number): the line is a landline,
    cached as if Lookup had said so (in the caller's transaction)."""
    await queries.record_fact(conn, phone_e164, valid=True, line_type="landline", source="twilio_21614")


async def record_invalid(conn: asyncpg.Connection, phone_e164: str, reason: str) -> int:
    """Twilio says the number does not exist (21211, 30005): invalid for every signup in
    every firm, with `reason` as their phone_error (in the caller's transaction)."""
    await queries.record_fact(conn, phone_e164, valid=False, line_type=None, source=reason)
    return await queries.mark_leads_invalid(conn, phone_e164, reason)


def is_auth_failure(exc: TwilioError) -> bool:
    return exc.status == 401 or exc.code == 20003


async def _auth_alarm(deps: Deps, exc: TwilioError) -> None:
    """Log an authentication failure at CRITICAL once per AUTH_ALARM_S cluster-wide."""
    first = True
    try:
        first = bool(await deps.redis.set(AUTH_ALARM_KEY, "1", nx=True, ex=AUTH_ALARM_S))
    except Exception:  # Redis down: better one alarm too many than none
        pass
    if first:
        log.critical("twilio_auth_failed", status=exc.status, twilio_code=exc.code, detail=exc.detail,
                     hint="check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN; lookups are not retried")
    else:
        log.info("lookup_auth_failed_again", status=exc.status, twilio_code=exc.code)


def _jsonable(value: Any) -> Any:
    """The raw answer as plain JSON (the SDK may hand back non-JSON scalars)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# ---- lazy lookup (thread open) -----------------------------------------------------------

_background: set[asyncio.Task] = set()


async def _lazy_lookup(deps: Deps, phone_e164: str) -> PhoneLine | None:
    """lookup_line_type for thread open; a failure is remembered for LAZY_FAILURE_TTL_S."""
    try:
        # An imported lead's wait for its line type is not intake latency: not observed.
        return await lookup_line_type(deps, phone_e164, observe_intake=False)
    except (TwilioError, PermanentError):
        try:
            await deps.redis.set(failed_key(phone_e164), "1", ex=LAZY_FAILURE_TTL_S)
        except Exception:  # Redis down: the next open asks again, no worse than before
            pass
        raise


def _in_background(deps: Deps, phone_e164: str) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(_lazy_lookup(deps, phone_e164))
    _background.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.info("lazy_lookup_failed", error=f"{type(exc).__name__}: {exc}")


async def lazy_line_type(deps: Deps, phone_e164: str, *, wait_ms: int | None = None) -> PhoneLine | None:
    """The line for thread open: cached, or looked up inline within `LAZY_LOOKUP_WAIT_MS`.

    A stale answer is returned at once and refreshed in the background. None means
    unknown (the lookup failed, lately or now, or is still running and will fill the cache).
    """
    row = await queries.cached_line(deps.pool, phone_e164, ttl_seconds(deps))
    if row is not None:
        if not row["fresh"]:
            _in_background(deps, phone_e164)
        return PhoneLine.from_row(row)
    if await deps.redis.exists(failed_key(phone_e164)):
        log.info("lazy_lookup_skipped_after_failure", phone=phone_e164)
        return None
    wait_s = (deps.settings.lazy_lookup_wait_ms if wait_ms is None else wait_ms) / 1000
    deadline = time.monotonic() + wait_s
    task = _in_background(deps, phone_e164)
    try:
        line = await asyncio.wait_for(asyncio.shield(task), wait_s)
    except asyncio.TimeoutError:
        log.info("lazy_lookup_timed_out", phone=phone_e164, wait_ms=round(wait_s * 1000))
        return None
    except (TwilioError, PermanentError):
        return None  # logged by _ask_twilio; unknown for now
    while line is None and time.monotonic() < deadline:  # another process holds the lock
        await asyncio.sleep(POLL_INTERVAL_S)
        row = await queries.cached_line(deps.pool, phone_e164, ttl_seconds(deps))
        line = PhoneLine.from_row(row) if row else None
    return line
