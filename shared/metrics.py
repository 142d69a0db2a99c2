"""Cluster-wide counters and histograms, kept in Redis.

Every web and worker process adds to the same figures, so `GET /metrics` on any web
process reports the whole cluster however many processes run (a per-process
prometheus_client counter would be right only for the process that was scraped).

Layout: one Redis hash per metric, `leadsms:metrics:<name>`.
- counter: field = the canonical label string (`code="landline"`, `""` when unlabelled),
  value = HINCRBY total.
- histogram: fields `<part>|<labels>` where part is `le=<bound>` (observations in that
  bucket only, not cumulative: one HINCRBY per observation), `sum` (HINCRBYFLOAT) and
  `count`; the exporter makes the buckets cumulative at scrape time.

Recording is best effort: a Redis error or timeout is logged at debug and swallowed, so
a metric can never fail or noticeably slow a send. An unknown metric name or label set
is a programming error and raises `ValueError` at once (the feature's tests catch it).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import structlog
from aiohttp import web

from shared.errors import HttpError
from shared.web import DEPS

log = structlog.get_logger(__name__)

KEY_PREFIX = "leadsms:metrics:"
# How long a metric write may take before the caller moves on without it.
WRITE_TIMEOUT_S = 0.5

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LOOKUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "counter" | "histogram"
    help: str
    labels: tuple[str, ...] = ()
    # Label values exported as 0 before anything is recorded, so series exist from the
    # start and `rate()` / alerts see the first increment.
    known: Mapping[str, tuple[str, ...]] | None = None
    buckets: tuple[float, ...] = ()


REFUSAL_CODES = ("rate_limited", "opted_out", "landline", "blocked", "no_phone", "pending",
                 "invalid_phone", "review_opt_out")
WEBHOOK_KINDS = ("status", "inbound")
WEBHOOK_RESULTS = ("ok", "bad_signature", "error")
LOOKUP_RESULTS = ("made", "cache_hit", "failed")
WEBHOOK_DELIVERY_OUTCOMES = ("delivered", "http_error", "timeout", "connect_error", "address_not_allowed")

SENDS_REFUSED = "leadsms_sends_refused_total"
SENDS_DEDUPLICATED = "leadsms_sends_deduplicated_total"
WEBHOOK_REQUESTS = "leadsms_webhook_requests_total"
LOOKUPS = "leadsms_lookups_total"
WEBHOOK_DELIVERIES = "leadsms_webhook_deliveries_total"
SEND_LATENCY = "leadsms_send_accept_to_twilio_seconds"
LINE_TYPE_LATENCY = "leadsms_intake_to_line_type_seconds"

METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric(SENDS_REFUSED, "counter", "Sends refused by the portal send endpoint, by refusal code.",
           ("code",), {"code": REFUSAL_CODES}),
    Metric(SENDS_DEDUPLICATED, "counter",
           "Send requests answered with an earlier message inside the duplicate window."),
    Metric(WEBHOOK_REQUESTS, "counter", "Twilio webhook requests, by kind and result.",
           ("kind", "result"), {"kind": WEBHOOK_KINDS, "result": WEBHOOK_RESULTS}),
    Metric(WEBHOOK_DELIVERIES, "counter", "Outbound webhook delivery attempts, by outcome.",
           ("outcome",), {"outcome": WEBHOOK_DELIVERY_OUTCOMES}),
    Metric(LOOKUPS, "counter", "Line-type lookups: made at Twilio, answered from the cache, failed.",
           ("result",), {"result": LOOKUP_RESULTS}),
    Metric(SEND_LATENCY, "histogram",
           "Seconds from a send being accepted (message row created) to Twilio accepting it.",
           buckets=LATENCY_BUCKETS),
    Metric(LINE_TYPE_LATENCY, "histogram",
           "Seconds from a lead's intake (row created) to its line type being known.",
           buckets=LOOKUP_BUCKETS),
)}


# ---- label strings ---------------------------------------------------------------------

def escape_label_value(value: str) -> str:
    """Prometheus text-format escaping of a label value."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_string(labels: Mapping[str, Any]) -> str:
    """The canonical form `a="x",b="y"` (sorted by name), used as hash field and output."""
    return ",".join(f'{k}="{escape_label_value(str(labels[k]))}"' for k in sorted(labels))


def _check(name: str, kind: str, labels: Mapping[str, Any]) -> Metric:
    metric = METRICS.get(name)
    if metric is None or metric.kind != kind:
        raise ValueError(f"{name!r} is not a known {kind} (see shared.metrics.METRICS)")
    if set(labels) != set(metric.labels):
        raise ValueError(f"{name} takes labels {sorted(metric.labels)}, got {sorted(labels)}")
    return metric


def bucket_bound(buckets: Iterable[float], seconds: float) -> str:
    """The `le=` part of the first bucket holding `seconds` ("+Inf" past the last)."""
    for bound in buckets:
        if seconds <= bound:
            return f"le={format_float(bound)}"
    return "le=+Inf"


def format_float(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return f"{value:.1f}"
    return repr(float(value))


def _counter_ops(name: str, amount: int, labels: Mapping[str, Any]) -> tuple[str, str, int]:
    _check(name, "counter", labels)
    return KEY_PREFIX + name, label_string(labels), int(amount)


def _observations_pipeline(redis: Any, name: str, seconds: Sequence[float], labels: Mapping[str, Any]) -> Any:
    """A transaction pipeline holding these observations: each bucket, the sum and the
    count incremented once by their totals (the same hash as one by one). The caller
    executes it."""
    metric = _check(name, "histogram", labels)
    values = [max(0.0, float(s)) for s in seconds]
    ls = label_string(labels)
    key = KEY_PREFIX + name
    per_bucket: dict[str, int] = {}
    for value in values:
        bound = bucket_bound(metric.buckets, value)
        per_bucket[bound] = per_bucket.get(bound, 0) + 1
    pipe = redis.pipeline(transaction=True)
    for bound, n in per_bucket.items():
        pipe.hincrby(key, f"{bound}|{ls}", n)
    pipe.hincrbyfloat(key, f"sum|{ls}", sum(values))
    pipe.hincrby(key, f"count|{ls}", len(values))
    return pipe


# ---- recording (async: web handlers and actors) ---------------------------------------

async def incr(redis: Any, name: str, amount: int = 1, **labels: Any) -> None:
    """Add `amount` to counter `name` with `labels`; never raises for Redis trouble."""
    key, field, amount = _counter_ops(name, amount, labels)
    try:
        await asyncio.wait_for(redis.hincrby(key, field, amount), WRITE_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("metric_write_failed", metric=name, error=f"{type(exc).__name__}: {exc}")


async def observe(redis: Any, name: str, seconds: float, **labels: Any) -> None:
    """Record one observation of `seconds` in histogram `name`; never raises for Redis trouble."""
    await observe_many(redis, name, [seconds], **labels)


async def observe_many(redis: Any, name: str, seconds: Sequence[float], **labels: Any) -> None:
    """Record every observation of `seconds` in histogram `name` in one round trip; never
    raises for Redis trouble."""
    pipe = _observations_pipeline(redis, name, seconds, labels)
    try:
        await asyncio.wait_for(pipe.execute(), WRITE_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("metric_write_failed", metric=name, error=f"{type(exc).__name__}: {exc}")


class _CounterGroup:
    """Counter increments of many concurrent requests in one Redis round trip.

    Per webhook, the answer-counting middleware's own HINCRBY round trip was a visible
    share of the web's CPU at 1,000+ callbacks/s. Here increments that arrive while a
    write is in flight are summed per (hash, field) and written by the next one (pipelined
    HINCRBYs); each caller still waits until the write holding its increment is done, so
    a count is in Redis before its request is answered, exactly as before."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.pending: dict[tuple[str, str], int] = {}
        self.waiters: list[asyncio.Future] = []
        self.writer: asyncio.Task | None = None

    async def add(self, key: str, field: str, amount: int) -> None:
        loop = asyncio.get_running_loop()
        self.pending[(key, field)] = self.pending.get((key, field), 0) + amount
        done = loop.create_future()
        self.waiters.append(done)
        if self.writer is None or self.writer.done():
            self.writer = loop.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        while self.pending:
            pending, self.pending = self.pending, {}
            waiters, self.waiters = self.waiters, []
            try:
                pipe = self.redis.pipeline(transaction=False)
                for (key, field), amount in pending.items():
                    pipe.hincrby(key, field, amount)
                await asyncio.wait_for(pipe.execute(), WRITE_TIMEOUT_S)
            except Exception as exc:  # best effort, as `incr`
                log.debug("metric_write_failed", metrics=len(pending), error=f"{type(exc).__name__}: {exc}")
            finally:
                for w in waiters:
                    if not w.done():
                        w.set_result(None)


# One group per (event loop, Redis client): a client's connections belong to one loop.
_groups: dict[tuple[int, int], tuple[Any, _CounterGroup]] = {}


async def incr_grouped(redis: Any, name: str, amount: int = 1, **labels: Any) -> None:
    """`incr`, written together with the other increments of the moment (see _CounterGroup)."""
    key, field, amount = _counter_ops(name, amount, labels)
    ident = (id(asyncio.get_running_loop()), id(redis))
    found = _groups.get(ident)
    if found is None or found[0] is not redis:
        found = _groups[ident] = (redis, _CounterGroup(redis))
    await found[1].add(key, field, amount)


# ---- the named helpers the feature packages call ---------------------------------------

async def record_send_refused(redis: Any, code: str) -> None:
    """A portal send refused (409 not sendable with its code, or 429 `rate_limited`)."""
    await incr(redis, SENDS_REFUSED, code=code)


async def record_send_deduplicated(redis: Any) -> None:
    """A send answered with the earlier message of the duplicate window (200, deduplicated)."""
    await incr(redis, SENDS_DEDUPLICATED)


async def record_webhook(redis: Any, kind: str, result: str) -> None:
    """A Twilio webhook request: kind `status`|`inbound`, result `ok`|`bad_signature`|`error`."""
    await incr(redis, WEBHOOK_REQUESTS, kind=kind, result=result)


async def record_lookup(redis: Any, result: str, amount: int = 1) -> None:
    """`amount` line-type lookups: `made` (Twilio asked), `cache_hit`, `failed`."""
    await incr(redis, LOOKUPS, amount, result=result)


async def observe_send_latency(redis: Any, seconds: float) -> None:
    """Message row created -> Twilio accepted it (the sid is stored)."""
    await observe(redis, SEND_LATENCY, seconds)


async def observe_line_type_latency(redis: Any, seconds: float) -> None:
    """Lead row created -> its line type known (phone_lines written or found cached)."""
    await observe(redis, LINE_TYPE_LATENCY, seconds)


async def observe_line_type_latencies(redis: Any, seconds: Sequence[float]) -> None:
    """`observe_line_type_latency` for a batch's leads, in one round trip (a bulk import's
    batch took one per lead)."""
    if seconds:
        await observe_many(redis, LINE_TYPE_LATENCY, seconds)


# ---- counting what the HTTP contract already says ----------------------------------------

_SEND_PATH = re.compile(r"^/v1/conversations/\d+/messages$")
_WEBHOOKS = {"/twilio/status": "status", "/twilio/inbound": "inbound"}


def _answer_code(response: web.StreamResponse) -> str | None:
    body = getattr(response, "text", None)
    try:
        data = json.loads(body) if isinstance(body, str) and body.startswith("{") else None
    except ValueError:
        return None
    return data.get("code") if isinstance(data, dict) else None


async def _count_answer(redis: Any, request: web.Request, status: int, code: str | None) -> None:
    """Counters read off the API's answers, so the feature handlers need no metric calls:
    a send answered 409/429 was refused with that code, 200 was a duplicate (202 is new);
    a Twilio webhook answered 2xx was taken, 403 `bad_signature` was forged, else error."""
    kind = _WEBHOOKS.get(request.path)
    if kind is not None and request.method == "POST":
        result = "ok" if status < 300 else "bad_signature" if code == "bad_signature" else "error"
        await incr_grouped(redis, WEBHOOK_REQUESTS, kind=kind, result=result)
    elif request.method == "POST" and _SEND_PATH.match(request.path):
        if status in (409, 429) and code in REFUSAL_CODES:
            await record_send_refused(redis, code)
        elif status == 200:
            await record_send_deduplicated(redis)


@web.middleware
async def answer_counting_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.method != "POST" or not (request.path in _WEBHOOKS or request.path.startswith("/v1/conversations/")):
        return await handler(request)
    redis = request.app[DEPS].redis
    try:
        response = await handler(request)
    except HttpError as exc:
        await _count_answer(redis, request, exc.status, exc.code)
        raise
    except web.HTTPException as exc:
        await _count_answer(redis, request, exc.status, None)
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        await _count_answer(redis, request, 500, None)
        raise
    await _count_answer(redis, request, response.status, _answer_code(response) if response.status >= 400 else None)
    return response
