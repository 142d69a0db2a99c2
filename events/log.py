"""Writing the event log: one call, inside the caller's transaction.

`record(conn, firm_id, type, data)` writes the event to `events_pending`, unnumbered; at
COMMIT the database moves the transaction's pending events into `events`, numbered from
the firm's counter (migrations 0011 and 0018), so the cursor order is the order in which
readers can see events, and a rolled-back change leaves no event. `data`
is api.md's shape of the thing, built by the caller with the one function of its shape.

After the commit, the caller may `wake(redis, firm_ids)`: a Redis publish that tells every
web's stream reader to look now. It is only a wake-up: a lost one costs a stream at most
one heartbeat, because the reader polls the table on each heartbeat too.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError
import structlog

from shared.errors import AppError

log = structlog.get_logger(__name__)

# design.md's event types; data is the thing's api.md shape (message, conversation, lead),
# `lead.deleted` {lead_id}, `consent.changed` {phone, kind, source, at}, the import
# summaries their counts; `webhook_endpoint.disabled` {endpoint_id, url, reason, at}.
EVENT_TYPES = frozenset({
    "message.created", "message.status", "message.received",
    "conversation.updated", "conversation.deleted",
    "lead.updated", "lead.deleted",
    "consent.changed",
    "leads.imported", "optouts.imported",
    "webhook_endpoint.disabled",
})

WAKE_CHANNEL = "leadsms:events:wake"


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__} in an event")


def encode(data: Mapping[str, Any]) -> str:
    return json.dumps(data, default=_default, separators=(",", ":"), ensure_ascii=False)


def _check_type(event_type: str) -> None:
    if event_type not in EVENT_TYPES:
        raise AppError(f"unknown event type {event_type!r}", code="unknown_event_type")


async def record(conn: asyncpg.Connection, firm_id: int, event_type: str, data: Mapping[str, Any]) -> None:
    """Append one event for the firm in the caller's transaction (numbered at commit)."""
    _check_type(event_type)
    await conn.execute(
        "INSERT INTO events_pending (firm_id, type, data) VALUES ($1, $2, $3::text::jsonb)",
        firm_id, event_type, encode(data),
    )


async def record_many(conn: asyncpg.Connection, items: Iterable[tuple[int, str, Mapping[str, Any]]]) -> None:
    """Append several events (firm_id, type, data) in one statement, in the given order."""
    firms, types, datas = [], [], []
    for firm_id, event_type, data in items:
        _check_type(event_type)
        firms.append(firm_id)
        types.append(event_type)
        datas.append(encode(data))
    if not firms:
        return
    await conn.execute(
        """
        INSERT INTO events_pending (firm_id, type, data)
        SELECT f, t, d::jsonb FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS u(f, t, d, n)
        ORDER BY n
        """,
        firms, types, datas,
    )


async def wake(redis: aioredis.Redis | None, firm_ids: Iterable[int]) -> None:
    """Tell every web's stream reader that these firms have new events (after commit).
    Best effort: a Redis failure is logged and costs at most one heartbeat."""
    firms = sorted(set(firm_ids))
    if redis is None or not firms:
        return
    try:
        await redis.publish(WAKE_CHANNEL, ",".join(str(f) for f in firms))
    except (RedisError, OSError) as exc:
        log.warning("events_wake_failed", error=type(exc).__name__)
