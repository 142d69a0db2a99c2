"""What the scenarios share: a firm and its conversations set up in bulk, sends posted
over HTTP as the portal would, waiting until nothing is left in flight, and the check
of every message against the simulator's record."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from firms.service import ALWAYS_OPEN, add_firm
from tests.faults.stack import Stack, Witness

IN_FLIGHT = ("queued", "sending")
SENT = ("sent", "delivered", "undelivered")
FINAL = ("sent", "delivered", "undelivered", "failed", "blocked")


@dataclass
class Firm:
    id: int
    number: str
    key: str

    def headers(self, user: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.key}"}
        if user is not None:
            h["X-User-Id"] = user
        return h


async def make_firm(stack: Stack, number: str = "+16465550100") -> Firm:
    created = await add_firm(stack.settings.database_url, "Fault Firm", number, quiet_hours=ALWAYS_OPEN)
    return Firm(created["firm_id"], created["sms_number"], created["api_key"])


async def add_conversations(conn: asyncpg.Connection, firm_id: int, phones: list[str]) -> dict[str, int]:
    """A valid lead and a conversation per phone, in bulk; {phone: conversation id}."""
    await conn.executemany(
        """INSERT INTO leads (firm_id, external_id, name, email, event, phone_raw, phone_e164, phone_status)
           VALUES ($1, $2, 'Fault Lead', 'lead@example.com', 'Seminar', $3, $3, 'valid')""",
        [(firm_id, f"fault-{p}", p) for p in phones])
    rows = await conn.fetch(
        """INSERT INTO conversations (firm_id, phone_e164, lead_id)
           SELECT firm_id, phone_e164, id FROM leads WHERE firm_id = $1 AND phone_e164 = ANY($2::text[])
           RETURNING id, phone_e164""", firm_id, phones)
    return {r["phone_e164"]: r["id"] for r in rows}


@dataclass
class Posted:
    accepted: dict[int, tuple[int, str]] = field(default_factory=dict)  # message id -> (conversation, body)
    refused: dict[int, int] = field(default_factory=dict)  # status -> count
    errors: int = 0
    refusal_codes: dict[str, int] = field(default_factory=dict)


async def post_sends(stack: Stack, firm: Firm, plan: list[tuple[int, str]], *, concurrency: int = 24,
                     retry_refused: bool = False, deadline_s: float = 600, base_url: str | None = None) -> Posted:
    """POST each (conversation, body) once (or, with `retry_refused`, until accepted, as a
    portal user would after a 503) to `base_url` (default: the stack's first web). A 5xx
    other than 503 is an error."""
    out = Posted()
    gate = asyncio.Semaphore(concurrency)
    stop_at = time.monotonic() + deadline_s

    async def one(session: aiohttp.ClientSession, conv: int, body: str) -> None:
        async with gate:
            while True:
                try:
                    async with session.post(f"/v1/conversations/{conv}/messages", json={"body": body},
                                            headers=firm.headers(f"user-{conv}")) as resp:
                        data = await resp.json(content_type=None)
                        status = resp.status
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    status, data = 0, {}
                if status in (200, 202):
                    out.accepted[data["id"]] = (conv, body)
                    return
                out.refused[status] = out.refused.get(status, 0) + 1
                code = (data or {}).get("code", "?") if isinstance(data, dict) else "?"
                out.refusal_codes[code] = out.refusal_codes.get(code, 0) + 1
                if status >= 500 and status != 503:
                    out.errors += 1
                if not retry_refused or status not in (0, 503) or time.monotonic() > stop_at:
                    return
                await asyncio.sleep(0.5)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url=base_url or stack.web, timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(one(session, conv, body) for conv, body in plan))
    return out


async def wait_settled(conn: asyncpg.Connection, timeout: float, *, what: str = "every message final",
                       statuses: tuple[str, ...] = IN_FLIGHT) -> float:
    """Seconds until no outbound message is queued or sending; fails after `timeout`."""
    start = time.monotonic()
    while True:
        try:
            left = await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'out' AND status = ANY($1::text[])",
                                       list(statuses))
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
            left = -1
        if left == 0:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            rows = await conn.fetch("SELECT status, count(*) FROM messages GROUP BY 1")
            raise AssertionError(f"{what}: timed out after {timeout}s, {left} left ({[tuple(r) for r in rows]})")
        await asyncio.sleep(0.5)


@dataclass
class Audit:
    messages: int
    by_status: dict[str, int]
    sent: int  # at Twilio exactly once and recorded with its sid
    lost: int  # accepted, yet never at Twilio and not in a documented final state without a send
    duplicated: int  # extra copies at Twilio
    stuck: int  # still queued/sending
    problems: list[str]

    def figures(self) -> dict[str, Any]:
        return {"messages": self.messages, "messages_sent": self.sent, "lost": self.lost,
                "duplicated": self.duplicated, "stuck": self.stuck, "by_status": self.by_status}


async def audit(conn: asyncpg.Connection, witness: Witness, ids: list[int] | None = None) -> Audit:
    """Every outbound message against the witness: `sent`-like rows are at Twilio exactly
    once under the recorded sid; `failed`/`blocked` rows are at Twilio at most once (a
    permanent refusal creates nothing; `failed` after an ambiguous answer is documented)."""
    rows = await conn.fetch(
        "SELECT id, status, twilio_sid, error_code FROM messages WHERE direction = 'out'"
        + (" AND id = ANY($1::bigint[])" if ids is not None else ""), *([ids] if ids is not None else []))
    sids = witness.sid_of()
    by_status: dict[str, int] = {}
    sent = lost = stuck = 0
    problems: list[str] = []
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
        at_twilio = witness.per_id.get(r["id"], 0)
        if r["status"] in IN_FLIGHT:
            stuck += 1
        elif r["status"] in SENT:
            if at_twilio == 1 and r["twilio_sid"] in sids.get(r["id"], set()):
                sent += 1
            elif at_twilio == 0:
                lost += 1
                problems.append(f"message {r['id']} is {r['status']} but Twilio never got it")
            elif r["twilio_sid"] not in sids.get(r["id"], set()):
                problems.append(f"message {r['id']} records sid {r['twilio_sid']}, Twilio has {sids.get(r['id'])}")
        elif r["status"] == "blocked" and at_twilio:
            problems.append(f"message {r['id']} is blocked yet Twilio got it")
    duplicated = sum(n - 1 for i, n in witness.per_id.items() if n > 1 and (ids is None or i in set(ids)))
    return Audit(len(rows), by_status, sent, lost, duplicated, stuck, problems)
