"""Helpers for the portal tests: rows written straight with SQL (the picker and the list
read what intake, lookup and webhooks write; these tests set that state directly)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import asyncpg

from conversations.queries import bump_conversation, upsert_conversation

_ids = itertools.count(1)
NOW = dt.datetime.now(dt.timezone.utc)


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


async def add_lead(pool: asyncpg.Pool, firm_id: int, name: str, phone: str | None, *, email: str = "",
                   status: str = "valid", event: str = "Retirement Seminar",
                   signed_up_at: dt.datetime | None = None) -> int:
    """One signup as intake leaves it (status and E.164 already decided)."""
    error = "not_a_valid_number" if status == "invalid" else None
    return await pool.fetchval(
        """INSERT INTO leads (firm_id, external_id, name, email, event, phone_raw, phone_e164,
                              phone_status, phone_error, signed_up_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10, now())) RETURNING id""",
        firm_id, f"t-{next(_ids)}", name, email, event, phone, None if status == "missing" else phone,
        status, error, signed_up_at,
    )


async def set_line(pool: asyncpg.Pool, phone: str, line_type: str | None, valid: bool = True) -> None:
    await pool.execute(
        """INSERT INTO phone_lines (phone_e164, valid, line_type) VALUES ($1, $2, $3)
           ON CONFLICT (phone_e164) DO UPDATE SET valid = EXCLUDED.valid, line_type = EXCLUDED.line_type""",
        phone, valid, line_type,
    )


async def set_flag(pool: asyncpg.Pool, firm_id: int, phone: str, flag: str) -> None:
    """opted_out, review_pending or blocked for (firm, phone)."""
    extra = {"opted_out": ", opted_out_source = 'keyword:stop'", "blocked": ", blocked_reason = 'filtered'",
             "review_pending": ""}[flag]
    await pool.execute("INSERT INTO phone_flags (firm_id, phone_e164) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       firm_id, phone)
    await pool.execute(f"UPDATE phone_flags SET {flag} = true {extra} WHERE firm_id = $1 AND phone_e164 = $2",
                       firm_id, phone)


async def add_conversation(pool: asyncpg.Pool, firm_id: int, phone: str) -> int:
    async with pool.acquire() as conn:
        conv_id, _ = await upsert_conversation(conn, firm_id, phone)
    return conv_id


async def add_message(pool: asyncpg.Pool, firm_id: int, conv_id: int, body: str, *,
                      direction: str = "out", status: str | None = None, bump: bool = True) -> int:
    """A message in the thread as the send path or the inbound handler stores it."""
    status = status or ("received" if direction == "in" else "sent")
    async with pool.acquire() as conn, conn.transaction():
        msg_id = await conn.fetchval(
            """INSERT INTO messages (firm_id, conversation_id, direction, body, status, sent_by, received_at)
               VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3 = 'in' THEN clock_timestamp() END) RETURNING id""",
            firm_id, conv_id, direction, body, status, "u1" if direction == "out" else None,
        )
        if bump:
            await bump_conversation(conn, conv_id)
    return msg_id


async def get_json(http: Any, path: str, headers: dict[str, str], status: int = 200, **params: str) -> Any:
    async with http.get(path, headers=headers, params=params or None) as resp:
        body = await resp.json()
        assert resp.status == status, body
        return body
