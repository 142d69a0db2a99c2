"""Lifting an auto-block: `leadsms unblock --firm ID --phone +1…` and `unblock(conn, …)`.

A block is per (firm, phone) and set by repeated carrier filtering; staff lift it when
they have reason to think the number will take texts again. Every lift is audited in
`phone_flag_events` with who did it, and the failure count starts afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import asyncpg
import structlog

from conversations import feed
from shared.config import Settings
from shared.errors import AppError
from shared.logging import configure
from shared.phones import check_phone
from webhooks import queries

log = structlog.get_logger(__name__)


async def unblock(conn: asyncpg.Connection, firm_id: int, phone_e164: str, by: str) -> bool:
    """Lift the firm's block on the phone; True when it was blocked. Audited when it was."""
    async with conn.transaction():
        lifted = await queries.unblock_phone(conn, firm_id, phone_e164)
        if lifted:
            await queries.add_flag_event(conn, firm_id, phone_e164, "unblocked", actor=by)
            await feed.phone_changed(conn, phone_e164, firm_id)
    log.info("phone_unblocked" if lifted else "phone_not_blocked", firm_id=firm_id, by=by)
    return lifted


async def run_unblock(database_url: str, firm_id: int, raw_phone: str, by: str) -> dict:
    from shared.db import connect

    conn = await connect(database_url)
    try:
        firm = await queries.firm_by_id(conn, firm_id)
        if firm is None:
            raise AppError(f"no firm with id {firm_id}", code="no_firm")
        checked = check_phone(raw_phone, firm["default_region"])
        if checked.status != "valid":
            raise AppError(f"--phone {raw_phone!r} is not a valid phone number ({checked.error or checked.status})",
                           code="bad_phone")
        lifted = await unblock(conn, firm_id, checked.e164, by)
    finally:
        await conn.close()
    return {"firm_id": firm_id, "phone": checked.e164, "unblocked": lifted}


def cmd_unblock(args: argparse.Namespace) -> int:
    settings = Settings.for_command("unblock")
    configure(settings.log_format, settings.log_level)
    by = (getattr(args, "by", None) or "cli").strip() or "cli"
    result = asyncio.run(run_unblock(settings.database_url, args.firm, args.phone, by))
    print(json.dumps(result))
    return 0
