"""The read-only `/ops` page (and `/ops.json`), behind `OPS_TOKEN`."""

from __future__ import annotations

import asyncio
import hmac
import html
import json
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from aiohttp import web

from ops import queues
from ops.metrics import MESSAGE_STATUSES, guard_source, no_source
from ops.queries import fetch_figures, fetch_last_sweep, fetch_recent_failures
from shared.deps import Deps
from shared.errors import HttpError
from shared.web import BROKER, DEPS, json_response


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
        guard_source("postgres", pg()),
        guard_source("broker", asyncio.to_thread(from_broker)) if broker is not None else no_source())
    figures = (db or {}).get("figures") or {}
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "queues": (qs or {}).get("queues"),
        "dead_letters": (qs or {}).get("dead"),
        "messages_by_status": {s: figures.get("messages_by_status", {}).get(s, 0) for s in MESSAGE_STATUSES}
        if db else None,
        "inbox": {"unprocessed": figures["inbox_unprocessed"],
                  "oldest_age_s": round(figures["inbox_oldest_age_s"] or 0.0, 1)} if db else None,
        "paused": figures.get("paused", []) if db else None,
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
    parts.append("<h2>Paused sending</h2>")
    parts.append(_html_table(
        ("scope", "firm", "Twilio account", "error code", "why", "since", "resumes by"),
        [(p["scope"], p["firm_id"] if p["scope"] == "firm" else ", ".join(map(str, p["firm_ids"])) or "main account",
          p["account_sid"], p["code"], p["reason"], p["since"], p["resumes"]) for p in s["paused"]],
        "Nothing is paused.") if s["paused"] is not None else _unavailable("PostgreSQL"))
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
