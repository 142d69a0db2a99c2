"""Operations over HTTP: `GET /metrics` (Prometheus) and the read-only `/ops` page.

Every figure is computed at scrape time from the shared stores (PostgreSQL, the Redis
counters of `shared.metrics`, the broker's queues), so any web process answers for the
whole cluster however many web and worker processes run. A store that does not answer
costs only its own figures: the scrape still succeeds and `leadsms_metrics_source_up`
says which source is missing.

The per-process figures of a worker (messages processed, errors, durations per actor)
come from dramatiq's own exporter on each worker's `WORKER_METRICS_PORT`.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import structlog
from aiohttp import web

from shared import metrics, queues
from shared.deps import Deps
from shared.errors import HttpError
from shared.web import BROKER, DEPS, json_response

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MESSAGE_STATUSES = ("queued", "sending", "sent", "delivered", "undelivered", "failed", "blocked", "received")
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

# ---- the figures (SQL: a handful of indexed counts; see migration 0007) ------------------

_SCALARS = """
SELECT
  (SELECT count(*) FROM phone_flags WHERE blocked) AS phones_blocked,
  (SELECT count(*) FROM phone_flags WHERE opted_out) AS phones_opted_out,
  (SELECT count(*) FROM phone_flags WHERE review_pending) AS phones_review_pending,
  (SELECT count(*) FROM phone_flag_events WHERE kind = 'blocked') AS auto_blocks,
  (SELECT count(*) FROM twilio_inbox WHERE processed_at IS NULL) AS inbox_unprocessed,
  (SELECT EXTRACT(EPOCH FROM now() - min(received_at))::float8
     FROM twilio_inbox WHERE processed_at IS NULL) AS inbox_oldest_age_s,
  (SELECT count(*) FROM leads WHERE phone_status = 'pending') AS leads_pending,
  (SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8
     FROM leads WHERE phone_status = 'pending') AS leads_pending_oldest_age_s,
  (SELECT EXTRACT(EPOCH FROM now() - min(COALESCE(next_attempt_at, created_at)))::float8
     FROM messages WHERE status = 'queued') AS queued_oldest_age_s,
  (SELECT EXTRACT(EPOCH FROM now() - min(claimed_at))::float8
     FROM messages WHERE status = 'sending') AS sending_oldest_age_s,
  (SELECT EXTRACT(EPOCH FROM finished_at)::float8
     FROM sweeper_passes ORDER BY id DESC LIMIT 1) AS sweeper_last_pass_ts,
  EXTRACT(EPOCH FROM now())::float8 AS now_ts
"""


async def fetch_figures(conn: Any) -> dict[str, Any]:
    """Everything `/metrics` reads from PostgreSQL, in one read-only transaction."""
    async with conn.transaction(readonly=True):
        await conn.execute("SET LOCAL statement_timeout = '4s'")
        scalars = dict(await conn.fetchrow(_SCALARS))
        by_status = await conn.fetch("SELECT status, count(*) AS n FROM messages GROUP BY status")
        by_error = await conn.fetch(
            "SELECT error_code, status, count(*) AS n FROM messages WHERE error_code IS NOT NULL GROUP BY 1, 2")
        blocked = await conn.fetch(
            "SELECT blocked_reason, count(*) AS n FROM messages WHERE status = 'blocked' GROUP BY 1")
        consent = await conn.fetch("SELECT kind, count(*) AS n FROM consent_events GROUP BY kind")
    return {
        **scalars,
        "messages_by_status": {r["status"]: r["n"] for r in by_status},
        "messages_by_error": [(r["error_code"], r["status"], r["n"]) for r in by_error],
        "messages_blocked": {r["blocked_reason"] or "": r["n"] for r in blocked},
        "consent": {r["kind"]: r["n"] for r in consent},
    }


async def fetch_recent_failures(conn: Any, limit: int = 20) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, firm_id, conversation_id, status, twilio_status, error_code,
                  left(error_message, 200) AS error_message, attempts, updated_at
             FROM messages WHERE status IN ('failed', 'undelivered')
            ORDER BY updated_at DESC, id DESC LIMIT $1""", limit)
    return [dict(r) for r in rows]


async def fetch_last_sweep(conn: Any) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT host_pid, started_at, finished_at, summary,
                  EXTRACT(EPOCH FROM now() - finished_at)::float8 AS age_s
             FROM sweeper_passes ORDER BY id DESC LIMIT 1""")
    if row is None:
        return None
    out = dict(row)
    if isinstance(out["summary"], str):
        out["summary"] = json.loads(out["summary"])
    return out


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
    out.family("leadsms_messages_blocked_by_reason", "gauge", "Messages never sent because a check stopped them.",
               [({"reason": r}, n) for r, n in sorted(f["messages_blocked"].items())])
    out.one("leadsms_messages_oldest_queued_age_seconds", "gauge",
            "Age of the oldest queued message past its due time (0 when none).", max(0.0, f["queued_oldest_age_s"] or 0.0))
    out.one("leadsms_messages_oldest_sending_age_seconds", "gauge",
            "Age of the oldest claimed (sending) message (0 when none).", max(0.0, f["sending_oldest_age_s"] or 0.0))
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


async def _guard(source: str, aw: Any) -> Any:
    try:
        return await asyncio.wait_for(aw, SCRAPE_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("metrics_source_failed", source=source, error=f"{type(exc).__name__}: {exc}")
        return None


async def _pg_figures(deps: Deps) -> dict[str, Any]:
    async with deps.pool.acquire(timeout=2) as conn:
        return await fetch_figures(conn)


async def render_metrics(deps: Deps, broker: Any) -> str:
    """The whole `/metrics` body."""
    pg, counters, stats = await asyncio.gather(
        _guard("postgres", _pg_figures(deps)),
        _guard("redis", metrics.read_all(deps.redis)),
        _guard("broker", asyncio.to_thread(queues.queue_stats, broker)) if broker is not None else _none(),
    )
    out = Exposition()
    if stats is not None:
        _queue_families(out, stats)
    if pg is not None:
        _postgres_families(out, pg)
    if counters is not None:
        out.lines.extend(metrics.exposition(counters))
    out.family("leadsms_metrics_source_up", "gauge", "1 when the scrape could read that source.",
               [({"source": "postgres"}, pg is not None), ({"source": "redis"}, counters is not None),
                ({"source": "broker"}, stats is not None)])
    return out.text() + _process_metrics()


async def _none() -> None:
    return None


def _process_metrics() -> str:
    """This web process's own process_* / python_* figures (prometheus_client's default registry)."""
    try:
        from prometheus_client import REGISTRY, generate_latest

        return generate_latest(REGISTRY).decode("utf-8")
    except Exception as exc:  # never fail a scrape over the process figures
        log.debug("process_metrics_failed", error=f"{type(exc).__name__}: {exc}")
        return ""


async def metrics_handler(request: web.Request) -> web.Response:
    body = await render_metrics(request.app[DEPS], request.app.get(BROKER))
    return web.Response(body=body.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


# ---- the ops page ---------------------------------------------------------------------

def check_ops_token(request: web.Request) -> None:
    """404 when OPS_TOKEN is unset (the page is off); 401 unless the bearer token matches."""
    token = request.app[DEPS].settings.ops_token
    if not token:
        raise HttpError(404, "not_found", "No such resource.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HttpError(401, "unauthorized", "Send the ops token as 'Authorization: Bearer <token>'.",
                        headers={"WWW-Authenticate": 'Bearer realm="ops"'})


async def ops_snapshot(deps: Deps, broker: Any) -> dict[str, Any]:
    """What the ops page shows, as JSON-ready data."""
    async def pg() -> dict[str, Any]:
        async with deps.pool.acquire(timeout=2) as conn:
            figures = await fetch_figures(conn)
            return {"figures": figures, "failures": await fetch_recent_failures(conn),
                    "sweep": await fetch_last_sweep(conn)}

    def from_broker() -> dict[str, Any]:
        stats = queues.queue_stats(broker)
        dead: list[dict[str, Any]] = []
        if queues.is_redis(broker):
            for s in stats:
                if s.dead:
                    dead += [asdict(d) | {"traceback": None} for d in queues.list_dead(broker, s.queue, limit=20)]
        dead.sort(key=lambda d: d["dead_at"] or "", reverse=True)
        return {"queues": [asdict(s) for s in stats], "dead": dead[:20]}

    db, qs = await asyncio.gather(
        _guard("postgres", pg()),
        _guard("broker", asyncio.to_thread(from_broker)) if broker is not None else _none())
    figures = (db or {}).get("figures") or {}
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "queues": (qs or {}).get("queues"),
        "dead_letters": (qs or {}).get("dead"),
        "messages_by_status": {s: figures.get("messages_by_status", {}).get(s, 0) for s in MESSAGE_STATUSES}
        if db else None,
        "inbox": {"unprocessed": figures["inbox_unprocessed"],
                  "oldest_age_s": round(figures["inbox_oldest_age_s"] or 0.0, 1)} if db else None,
        "recent_failures": db["failures"] if db else None,
        "sweeper_last_pass": db["sweep"] if db else None,
    }


async def ops_json_handler(request: web.Request) -> web.Response:
    check_ops_token(request)
    snapshot = await ops_snapshot(request.app[DEPS], request.app.get(BROKER))
    return json_response(snapshot, headers={"Cache-Control": "no-store"})


async def ops_page_handler(request: web.Request) -> web.Response:
    check_ops_token(request)
    snapshot = await ops_snapshot(request.app[DEPS], request.app.get(BROKER))
    return web.Response(text=render_page(snapshot), content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store"})


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if hasattr(v, "isoformat"):
        v = v.isoformat(timespec="seconds")
    elif isinstance(v, (dict, list)):
        v = json.dumps(v, default=str)
    return html.escape(str(v))


def _html_table(headers: Iterable[str], rows: Iterable[Iterable[Any]], empty: str = "none") -> str:
    rows = list(rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    if not rows:
        return f"<p class=empty>{html.escape(empty)}</p>"
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _unavailable(what: str) -> str:
    return f"<p class=down>{html.escape(what)} could not be read.</p>"


def render_page(s: Mapping[str, Any]) -> str:
    parts = [f"<h1>leadsms operations</h1><p>As of {html.escape(s['generated_at'])} (UTC).</p>", "<h2>Queues</h2>"]
    parts.append(_html_table(("queue", "depth", "in flight", "delayed", "dead"),
                             [(q["queue"], q["depth"], q["in_flight"], q["delayed"], q["dead"]) for q in s["queues"]])
                 if s["queues"] is not None else _unavailable("The broker"))
    parts.append("<h2>Messages by status</h2>")
    parts.append(_html_table(("status", "messages"), list(s["messages_by_status"].items()))
                 if s["messages_by_status"] is not None else _unavailable("PostgreSQL"))
    if s["inbox"] is not None:
        parts.append(f"<p>Twilio webhooks not yet processed: {s['inbox']['unprocessed']} "
                     f"(oldest {s['inbox']['oldest_age_s']} s).</p>")
    parts.append("<h2>Recent failures</h2>")
    parts.append(_html_table(
        ("message", "firm", "status", "twilio status", "error code", "error", "attempts", "updated"),
        [(f["id"], f["firm_id"], f["status"], f["twilio_status"], f["error_code"], f["error_message"],
          f["attempts"], f["updated_at"]) for f in s["recent_failures"]], "No failed or undelivered messages.")
        if s["recent_failures"] is not None else _unavailable("PostgreSQL"))
    parts.append("<h2>Dead letters</h2>")
    parts.append(_html_table(("queue", "id", "actor", "args", "dead at", "last error"),
                             [(d["queue"], d["id"], d["actor"], d["args"], d["dead_at"], d["error"])
                              for d in s["dead_letters"]], "No dead letters.")
                 if s["dead_letters"] is not None else _unavailable("The broker"))
    parts.append("<h2>Sweeper</h2>")
    sweep = s["sweeper_last_pass"]
    if sweep is None:
        parts.append("<p class=empty>No sweeper pass recorded.</p>")
    else:
        parts.append(_html_table(("host:pid", "started", "finished", "age (s)", "summary"),
                                 [(sweep["host_pid"], sweep["started_at"], sweep["finished_at"],
                                   round(sweep["age_s"], 1), sweep["summary"])]))
    style = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
             "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}"
             "th{background:#f4f4f4}.down{color:#b00}.empty{color:#777}")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>leadsms operations</title>"
            f"<meta name=robots content=noindex><style>{style}</style></head><body>{''.join(parts)}</body></html>")


def add_routes(app: web.Application) -> None:
    """Mount `/metrics`, `/ops` and `/ops.json` and the answer-counting middleware
    (shared/app.py calls this once, after the packages' routes)."""
    app.middlewares.append(metrics.answer_counting_middleware)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/ops", ops_page_handler)
    app.router.add_get("/ops.json", ops_json_handler)
