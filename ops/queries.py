"""SQL the ops figures read: the counts kept incrementally in `metric_counts` (migration
0016: a scrape sums a small table, never counts a big one) and a handful of indexed
reads (oldest ages, backlogs: see migration 0007)."""

from __future__ import annotations

import json
from typing import Any

from firms.queries import paused_accounts, paused_firms
from outbound.queries import backlog as webhook_backlog

_SCALARS = """
SELECT
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
        counts = await fetch_counts(conn)
        paused = await fetch_paused(conn)
        webhooks = await webhook_backlog(conn)
    single = {name: counts.get((name, ()), 0)
              for name in ("phones_blocked", "phones_opted_out", "phones_review_pending", "auto_blocks")}
    return {
        "webhook_backlog": [(r["endpoint_id"], r["undelivered"], r["oldest_s"]) for r in webhooks],
        "paused": paused,
        **scalars,
        **single,
        "messages_by_status": {labels[0]: n for (name, labels), n in counts.items() if name == "messages"},
        "messages_by_error": [(int(labels[0]), labels[1], n) for (name, labels), n in counts.items()
                              if name == "messages_error"],
        "messages_blocked": {labels[0]: n for (name, labels), n in counts.items() if name == "messages_blocked"},
        "consent": {labels[0]: n for (name, labels), n in counts.items() if name == "consent"},
    }


async def fetch_counts(conn: Any) -> dict[tuple[str, tuple[str, ...]], int]:
    """Every kept count, {(name, labels): n}, leaving out the ones at zero."""
    rows = await conn.fetch(
        "SELECT name, labels, sum(delta)::bigint AS n FROM metric_counts GROUP BY name, labels HAVING sum(delta) <> 0")
    return {(r["name"], tuple(r["labels"])): r["n"] for r in rows}


async def compact_counts(conn: Any) -> int:
    """Fold the delta rows appended so far into one row per count; how many it folded.
    Rows of transactions still open are not visible, so they stay for the next time."""
    return await conn.fetchval(
        """
        WITH gone AS (
            DELETE FROM metric_counts WHERE id <= (SELECT max(id) FROM metric_counts)
            RETURNING name, labels, delta
        ), folded AS (
            INSERT INTO metric_counts (name, labels, delta)
            SELECT name, labels, sum(delta) FROM gone GROUP BY name, labels HAVING sum(delta) <> 0
        )
        SELECT count(*) FROM gone
        """
    )


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
