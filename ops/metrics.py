"""`GET /metrics`: the Prometheus text format, for the whole cluster.

Every figure is computed at scrape time from the shared stores (PostgreSQL, the Redis
counters that `shared.metrics` records, the broker's queues), so any web process answers
for the whole cluster however many web and worker processes run. A store that does not
answer costs only its own figures: the scrape still succeeds and
`leadsms_metrics_source_up` says which source is missing.

The per-process figures of a worker (messages processed, errors, durations per actor)
come from dramatiq's own exporter on each worker's `WORKER_METRICS_PORT`.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any, Iterable, Mapping

import structlog
from aiohttp import web

from conversations.sendable import NOTICES
from ops import queues
from ops.queries import fetch_figures
from shared import metrics
from shared.deps import Deps
from shared.web import BROKER, DEPS

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# PostgreSQL figures are read at most once per this many seconds per web process, by one
# scrape at a time (the others wait for it or take the last copy): however many
# Prometheus servers scrape, PostgreSQL sees one read per interval.
PG_FIGURES_TTL_S = 5.0
# A scrape never waits long for a pool connection: the web's pool serves Twilio's webhooks.
PG_ACQUIRE_TIMEOUT_S = 1.0
MESSAGE_STATUSES = ("scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed", "blocked",
                    "canceled", "received")
CONSENT_KINDS = ("opt_out", "opt_in")
SCRAPE_TIMEOUT_S = 5.0

# What dramatiq's Prometheus middleware exports on each worker's WORKER_METRICS_PORT
# (dramatiq/middleware/prometheus.py; labels queue_name, actor_name). The dashboard may
# use these besides what `/metrics` exports.
WORKER_EXPORTER_METRICS = (
    "dramatiq_messages_total",
    "dramatiq_message_errors_total",
    "dramatiq_message_retries_total",
    "dramatiq_message_rejects_total",
    "dramatiq_messages_inprogress",
    "dramatiq_delayed_messages_inprogress",
    "dramatiq_message_duration_milliseconds_bucket",
    "dramatiq_message_duration_milliseconds_count",
    "dramatiq_message_duration_milliseconds_sum",
)


# ---- the Redis counters ------------------------------------------------------------------

async def read_counters(redis: Any) -> dict[str, dict[str, str]]:
    """Every metric's hash as `{name: {field: value}}`, in one round trip."""
    pipe = redis.pipeline(transaction=False)
    for name in metrics.METRICS:
        pipe.hgetall(metrics.KEY_PREFIX + name)
    results = await pipe.execute()
    out: dict[str, dict[str, str]] = {}
    for name, raw in zip(metrics.METRICS, results):
        out[name] = {_text(k): _text(v) for k, v in (raw or {}).items()}
    return out


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _known_label_sets(metric: metrics.Metric) -> list[str]:
    if not metric.labels:
        return [""]
    if not metric.known:
        return []
    combos: list[dict[str, str]] = [{}]
    for label in metric.labels:
        combos = [{**c, label: v} for c in combos for v in metric.known.get(label, ())]
    return [metrics.label_string(c) for c in combos]


def _series(name: str, labels: str, value: str, extra: str = "") -> str:
    inner = ",".join(p for p in (labels, extra) if p)
    return f"{name}{{{inner}}} {value}" if inner else f"{name} {value}"


def counter_lines(values: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Text-format lines (HELP, TYPE, samples) for every metric in `values`."""
    lines: list[str] = []
    for name, metric in metrics.METRICS.items():
        fields = values.get(name, {})
        lines.append(f"# HELP {name} {metric.help}")
        lines.append(f"# TYPE {name} {metric.kind}")
        if metric.kind == "counter":
            series = {ls: "0" for ls in _known_label_sets(metric)}
            series.update(fields)
            for ls in sorted(series):
                lines.append(_series(name, ls, series[ls]))
            continue
        by_labels: dict[str, dict[str, str]] = {ls: {} for ls in _known_label_sets(metric)}
        for field, value in fields.items():
            part, _, ls = field.partition("|")
            by_labels.setdefault(ls, {})[part] = value
        for ls in sorted(by_labels):
            parts = by_labels[ls]
            running = 0
            for bound in (*metric.buckets, math.inf):
                running += int(parts.get(f"le={metrics.format_float(bound)}", "0"))
                lines.append(_series(f"{name}_bucket", ls, str(running), f'le="{metrics.format_float(bound)}"'))
            lines.append(_series(f"{name}_sum", ls, repr(float(parts.get("sum", "0")))))
            lines.append(_series(f"{name}_count", ls, parts.get("count", "0")))
    return lines


# ---- Prometheus text format ---------------------------------------------------------------

def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


class Exposition:
    """Prometheus text format 0.0.4: HELP and TYPE once per family, escaped labels."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str, samples: Iterable[tuple[Mapping[str, Any], Any]]) -> None:
        self.lines.append(f"# HELP {name} {help_.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            ls = metrics.label_string(labels)
            self.lines.append(f"{name}{{{ls}}} {_value(value)}" if ls else f"{name} {_value(value)}")

    def one(self, name: str, kind: str, help_: str, value: Any) -> None:
        self.family(name, kind, help_, [({}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _postgres_families(out: Exposition, f: Mapping[str, Any]) -> None:
    status = {s: f["messages_by_status"].get(s, 0) for s in MESSAGE_STATUSES}
    out.family("leadsms_messages", "gauge", "Messages by our status (outbound and inbound).",
               [({"status": s}, n) for s, n in status.items()])
    out.family("leadsms_messages_by_error_code", "gauge", "Messages carrying a Twilio error code, by code and status.",
               [({"error_code": str(code), "status": st}, n) for code, st, n in sorted(f["messages_by_error"])])
    blocked = {code: 0 for code in NOTICES}  # every reason at 0: "0", not "No data", when none
    blocked.update(f["messages_blocked"])
    out.family("leadsms_messages_blocked_by_reason", "gauge", "Messages never sent because a check stopped them.",
               [({"reason": r}, n) for r, n in sorted(blocked.items())])
    out.one("leadsms_messages_oldest_queued_age_seconds", "gauge",
            "Age of the oldest queued message past its due time (0 when none).", max(0.0, f["queued_oldest_age_s"] or 0.0))
    out.one("leadsms_messages_oldest_sending_age_seconds", "gauge",
            "Age of the oldest claimed (sending) message (0 when none).", max(0.0, f["sending_oldest_age_s"] or 0.0))
    paused = Counter((p["scope"], str(p["code"]) if p["code"] is not None else "none") for p in f.get("paused", []))
    out.family("leadsms_sending_paused", "gauge",
               "Firms (scope firm) and Twilio accounts (scope account) whose sending is paused by an account-level "
               "Twilio error, by error code (/ops says which and why).",
               [({"scope": "firm", "code": "none"}, 0)] if not paused else
               [({"scope": scope, "code": code}, n) for (scope, code), n in sorted(paused.items())])
    out.one("leadsms_phones_blocked", "gauge", "Phones auto-blocked now (per firm and phone).", f["phones_blocked"])
    out.one("leadsms_phones_opted_out", "gauge", "Phones opted out now (per firm and phone).", f["phones_opted_out"])
    out.one("leadsms_phones_review_pending", "gauge", "Phones whose possible opt-out awaits staff review.",
            f["phones_review_pending"])
    out.one("leadsms_auto_blocks_total", "counter", "Auto-blocks ever made (phone_flag_events kind blocked).",
            f["auto_blocks"])
    out.family("leadsms_consent_changes_total", "counter", "Consent changes ever recorded, by kind (opt_out, opt_in).",
               [({"kind": k}, f["consent"].get(k, 0)) for k in CONSENT_KINDS])
    out.one("leadsms_inbox_unprocessed", "gauge", "Twilio webhook rows stored but not yet processed.",
            f["inbox_unprocessed"])
    out.one("leadsms_inbox_oldest_unprocessed_age_seconds", "gauge",
            "Age of the oldest unprocessed Twilio webhook row (0 when none).", max(0.0, f["inbox_oldest_age_s"] or 0.0))
    out.one("leadsms_leads_pending", "gauge", "Leads whose phone is still being validated.", f["leads_pending"])
    out.one("leadsms_leads_pending_oldest_age_seconds", "gauge", "Age of the oldest pending lead (0 when none).",
            max(0.0, f["leads_pending_oldest_age_s"] or 0.0))
    backlog = f.get("webhook_backlog", [])
    out.family("leadsms_webhook_backlog", "gauge", "Outbound webhook deliveries not yet delivered, per endpoint.",
               [({"endpoint_id": str(e)}, n) for e, n, _ in backlog])
    out.one("leadsms_webhook_oldest_undelivered_age_seconds", "gauge",
            "Age of the oldest event not yet delivered to an endpoint (0 when none).",
            max([0.0, *(age or 0.0 for _, _, age in backlog)]))
    last = f["sweeper_last_pass_ts"]  # no sample until the first pass: alert on absent() too
    out.family("leadsms_sweeper_last_pass_timestamp_seconds", "gauge",
               "When the last sweeper pass finished (Unix time).", [({}, last)] if last is not None else [])
    out.family("leadsms_sweeper_last_pass_age_seconds", "gauge", "Seconds since the last sweeper pass finished.",
               [({}, max(0.0, f["now_ts"] - last))] if last is not None else [])


def _queue_families(out: Exposition, stats: list[queues.QueueStats]) -> None:
    out.family("leadsms_queue_depth", "gauge", "Messages ready on a queue, waiting for a worker.",
               [({"queue": s.queue}, s.depth) for s in stats])
    out.family("leadsms_queue_in_flight", "gauge", "Messages taken by a worker and not yet acknowledged.",
               [({"queue": s.queue}, s.in_flight) for s in stats if s.in_flight is not None])
    out.family("leadsms_queue_delayed", "gauge", "Messages waiting out a delay (retry backoff, scheduled).",
               [({"queue": s.queue}, s.delayed) for s in stats])
    out.family("leadsms_queue_dead", "gauge", "Dead-lettered messages (see `leadsms queues dead QUEUE`).",
               [({"queue": s.queue}, s.dead) for s in stats])


async def guard_source(source: str, aw: Any) -> Any:
    try:
        return await asyncio.wait_for(aw, SCRAPE_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("metrics_source_failed", source=source, error=f"{type(exc).__name__}: {exc}")
        return None


class FiguresCache:
    """The last PostgreSQL figures and when they were read; one read in flight at a time."""

    def __init__(self, ttl_s: float = PG_FIGURES_TTL_S) -> None:
        self.ttl_s = ttl_s
        self.reads = 0
        self._value: dict[str, Any] | None = None
        self._at = -math.inf
        self._lock = asyncio.Lock()

    async def get(self, deps: Deps) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if self._value is not None and loop.time() - self._at < self.ttl_s:
            return self._value
        async with self._lock:  # the scrapes that came meanwhile take this read's result
            if self._value is not None and loop.time() - self._at < self.ttl_s:
                return self._value
            self.reads += 1
            async with deps.pool.acquire(timeout=PG_ACQUIRE_TIMEOUT_S) as conn:
                value = await fetch_figures(conn)
            self._value, self._at = value, loop.time()
            return value


async def render_metrics(deps: Deps, broker: Any, cache: FiguresCache | None = None) -> str:
    """The whole `/metrics` body."""
    cache = cache or FiguresCache(ttl_s=0)
    pg, counters, stats = await asyncio.gather(
        guard_source("postgres", cache.get(deps)),
        guard_source("redis", read_counters(deps.redis)),
        guard_source("broker", asyncio.to_thread(queues.queue_stats, broker)) if broker is not None else no_source(),
    )
    out = Exposition()
    if stats is not None:
        _queue_families(out, stats)
    if pg is not None:
        _postgres_families(out, pg)
    if counters is not None:
        out.lines.extend(counter_lines(counters))
    out.family("leadsms_metrics_source_up", "gauge", "1 when the scrape could read that source.",
               [({"source": "postgres"}, pg is not None), ({"source": "redis"}, counters is not None),
                ({"source": "broker"}, stats is not None)])
    return out.text() + _process_metrics()


async def no_source() -> None:
    return None


def _process_metrics() -> str:
    """This web process's own process_* / python_* figures (prometheus_client's default registry)."""
    try:
        from prometheus_client import REGISTRY, generate_latest

        return generate_latest(REGISTRY).decode("utf-8")
    except Exception as exc:  # never fail a scrape over the process figures
        log.debug("process_metrics_failed", error=f"{type(exc).__name__}: {exc}")
        return ""


# The app whose deps and broker a metrics listener reads (the main web app, or itself).
SOURCE_APP = web.AppKey("ops_metrics_source", web.Application)
CACHE = web.AppKey("ops_metrics_cache", FiguresCache)


async def metrics_handler(request: web.Request) -> web.Response:
    source = request.app.get(SOURCE_APP, request.app)
    body = await render_metrics(source[DEPS], source.get(BROKER), request.app.get(CACHE))
    return web.Response(body=body.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})
