"""`leadsms webhooks deliveries --firm ID [--endpoint ID] [--failed]` and
`leadsms webhooks replay --endpoint ID --since TIME`: the delivery log and replay.

`deliveries` prints one JSON line per delivery, newest first, with its attempts (time,
outcome, status, duration, response excerpt). `replay` makes every event since TIME that
the feed still holds due again for the endpoint (with the same webhook-id); the
sweeper's next pass starts delivering them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime

from outbound import queries
from shared.config import Settings
from shared.db import create_pool
from shared.errors import AppError, ConfigError
from shared.logging import configure


def _since(raw: str) -> datetime:
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError("--since", f"must be an ISO 8601 time with an offset, like 2026-01-31T09:00:00Z, got {raw!r}") from None
    if when.tzinfo is None:
        raise ConfigError("--since", "must carry an offset (Z or +HH:MM)")
    return when


def _default(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    raise TypeError(type(value).__name__)


async def print_deliveries(dsn: str, firm_id: int, endpoint_id: int | None, failed: bool, limit: int) -> int:
    pool = await create_pool(dsn, max_size=2)
    try:
        rows = await queries.deliveries_log(pool, firm_id, endpoint_id, failed, limit)
        for row in rows:
            item = dict(row)
            item["webhook_id"] = f"msg_{row['event_id']}"
            item["attempts_log"] = [dict(a) for a in await queries.attempts_of(pool, row["id"])]
            print(json.dumps(item, default=_default), flush=True)
        return len(rows)
    finally:
        await pool.close()


async def replay(dsn: str, endpoint_id: int, since: datetime) -> dict:
    pool = await create_pool(dsn, max_size=2)
    try:
        if await queries.endpoint_firm(pool, endpoint_id) is None:
            raise AppError(f"no webhook endpoint with id {endpoint_id}", code="no_endpoint")
        async with pool.acquire() as conn, conn.transaction():
            n = await queries.replay(conn, endpoint_id, since)
        return {"endpoint_id": endpoint_id, "since": since.isoformat(), "due_again": n}
    finally:
        await pool.close()


def cmd_webhooks(args: argparse.Namespace) -> int:
    settings = Settings.for_command("webhooks")
    configure(settings.log_format, settings.log_level)
    if args.webhooks_command == "deliveries":
        asyncio.run(print_deliveries(settings.database_url, args.firm, args.endpoint, args.failed, args.limit))
        return 0
    print(json.dumps(asyncio.run(replay(settings.database_url, args.endpoint, _since(args.since)))), flush=True)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("webhooks", help="outbound webhooks: the delivery log, replay")
    actions = p.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    d = actions.add_parser("deliveries", help="the delivery log of a firm (newest first, with attempts)")
    d.add_argument("--firm", type=int, required=True)
    d.add_argument("--endpoint", type=int, default=None)
    d.add_argument("--failed", action="store_true", help="only deliveries whose last attempt failed")
    d.add_argument("--limit", type=int, default=100)
    d.set_defaults(run=cmd_webhooks)
    r = actions.add_parser("replay", help="deliver again every event since TIME to an endpoint")
    r.add_argument("--endpoint", type=int, required=True)
    r.add_argument("--since", required=True, metavar="TIME", help="ISO 8601 with an offset")
    r.set_defaults(run=cmd_webhooks)
