"""Helpers of the security tests: the error shape every refusal must have, and rows a
test starts from (set up directly: these tests attack the API, not intake)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import aiohttp

_external = itertools.count(1)


async def add_lead(pool: Any, firm_id: int, phone: str, name: str = "Dana Lead", email: str = "dana@example.com") -> int:
    return await pool.fetchval(
        """INSERT INTO leads (firm_id, external_id, name, email, event, phone_raw, phone_e164, phone_status)
           VALUES ($1, $2, $3, $4, 'Spring seminar', $5, $5, 'valid') RETURNING id""",
        firm_id, f"sec-{next(_external)}", name, email, phone,
    )


async def add_conversation(pool: Any, firm_id: int, lead_id: int, phone: str) -> int:
    return await pool.fetchval(
        """INSERT INTO conversations (firm_id, phone_e164, lead_id, last_message_at)
           VALUES ($1, $2, $3, now()) RETURNING id""",
        firm_id, phone, lead_id,
    )


async def add_message(pool: Any, firm_id: int, conversation_id: int, body: str, *, direction: str = "out",
                      status: str = "sent") -> int:
    return await pool.fetchval(
        """INSERT INTO messages (firm_id, conversation_id, direction, body, sent_by, status, segments)
           VALUES ($1, $2, $3, $4, 'user-b', $5, 1) RETURNING id""",
        firm_id, conversation_id, direction, body, status,
    )


async def error_of(resp: aiohttp.ClientResponse) -> dict:
    """The `{"error", "code"}` body of a 4xx answer; fails on anything else."""
    text = await resp.text()
    assert 400 <= resp.status < 500, f"{resp.method} {resp.url} answered {resp.status}: {text[:300]}"
    assert resp.content_type == "application/json", (resp.status, resp.content_type, text[:300])
    body = json.loads(text)
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    return body
