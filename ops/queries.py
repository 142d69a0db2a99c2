"""SQL the ops figures read: a handful of indexed counts (see migration 0007)."""

from __future__ import annotations

import json
from typing import Any

from firms.queries import paused_accounts, paused_firms
from outbound.queries import backlog as webhook_backlog

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
        paused = await fetch_paused(conn)
        webhooks = await webhook_backlog(conn)
    return {
        "webhook_backlog": [(r["endpoint_id"], r["undelivered"], r["oldest_s"]) for r in webhooks],
        "paused": paused,
        **scalars,
        "messages_by_status": {r["status"]: r["n"] for r in by_status},
        "messages_by_error": [(r["error_code"], r["status"], r["n"]) for r in by_error],
        "messages_blocked": {r["blocked_reason"] or "": r["n"] for r in blocked},
        "consent": {r["kind"]: r["n"] for r in consent},
    }


async def fetch_paused(conn: Any) -> list[dict[str, Any]]:
    """What sending is paused now and why (firms/pauses.py): firms paused by a sender
    error, and Twilio accounts paused by an authentication error. Never a token."""
    firms = await paused_firms(conn)
    accounts = await paused_accounts(conn)
    out = [{"scope": "firm", "firm_id": r["id"], "account_sid": None, "code": r["paused_code"],
            "reason": r["paused_reason"], "since": r["paused_at"], "resumes": "leadsms firm resume"}
           for r in firms]
    out += [{"scope": "account", "firm_id": None, "firm_ids": list(r["firm_ids"] or []),
             "account_sid": r["account_sid"], "code": r["code"], "reason": r["reason"], "since": r["paused_at"],
             "resumes": "the sweeper's probe", "probed_at": r["probed_at"]}
            for r in accounts]
    return out


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
