"""`leadsms firm delete --firm ID --confirm`: a firm's offboarding.

Every person of the firm is erased the way `POST /v1/erasure` erases one (intake/erasure.py),
a batch of phones at a time under one erasure record: unsent messages cancelled first, the
consent ledger and flag audit kept with hashed phones, suppressions kept by hash. Then
what no phone led to (signups without a phone, the firm's events, its outbound webhook
endpoints with their deliveries) goes, and the firm row
stays as a tombstone (no API key, no numbers, no Twilio account) so the hashed ledger
keeps its firm id. The Twilio message records are deleted here, several at a time; any
left (Twilio unreachable) are retried by the worker (the sweeper re-runs an erasure that
is not done).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import structlog

from intake import erasure
from intake import erasure_queries as queries
from outbound import queries as outbound_queries
from shared.config import Settings
from shared.deps import Deps, close_deps, open_deps
from shared.errors import AppError
from shared.logging import configure

log = structlog.get_logger(__name__)

PHONES_PER_BATCH = 500
TWILIO_DELETES_IN_FLIGHT = 10


async def offboard_firm(deps: Deps, firm_id: int, requested_by: str = "cli:firm-delete") -> dict:
    key = erasure.erasure_key(deps)
    started = time.monotonic()
    if not await queries.live_firm(deps.pool, firm_id):
        raise AppError(f"no firm with id {firm_id} (or it is deleted already)", code="no_firm")
    erasure_id = await queries.insert_erasure(deps.pool, firm_id, requested_by, None, None)
    await queries.cancel_firm_unsent(deps.pool, firm_id)
    phones_done, sids, after = 0, [], ""
    while True:
        async with deps.pool.acquire() as conn:
            phones = await queries.firm_phones(conn, firm_id, after, PHONES_PER_BATCH)
            if not phones:
                break
            lead_ids = await queries.firm_leads_of_phones(conn, firm_id, phones)
        sids += await erasure.erase_phones(deps, key, erasure_id, firm_id, phones, lead_ids, final=False)
        phones_done += len(phones)
        after = phones[-1]
    async with deps.pool.acquire() as conn, conn.transaction():
        await queries.delete_firm_leftovers(conn, firm_id)
        await outbound_queries.delete_firm_webhooks(conn, firm_id)
        await queries.tombstone_firm(conn, firm_id)
        await queries.mark_erased(conn, erasure_id, [], done=not sids)
    erased_s = time.monotonic() - started
    left = await _delete_twilio_records(deps, sids)
    log.info("firm_offboarded", firm_id=firm_id, erasure_id=erasure_id, phones=phones_done,
             twilio_records=len(sids), twilio_left=left)
    return {"firm_id": firm_id, "erasure_id": erasure_id, "phones": phones_done, "twilio_records": len(sids),
            "twilio_records_left": left, "database_s": round(erased_s, 3),
            "seconds": round(time.monotonic() - started, 3)}


async def _delete_twilio_records(deps: Deps, sids: list[str]) -> int:
    """Delete these records at Twilio, a few at a time; how many are left for the worker."""
    gate = asyncio.Semaphore(TWILIO_DELETES_IN_FLIGHT)
    left = 0

    async def one(sid: str) -> None:
        nonlocal left
        async with gate:
            try:
                await erasure.delete_twilio_record(deps, sid)
            except AppError as exc:
                left += 1
                log.warning("twilio_delete_deferred", message_sid=sid, error=str(exc))

    await asyncio.gather(*(one(sid) for sid in sids))
    return left


def cmd_firm_delete(args: argparse.Namespace) -> int:
    if not args.confirm:
        print("leadsms: firm delete erases every person of the firm; run it again with --confirm", file=sys.stderr)
        return 2
    settings = Settings.for_command("firm-delete")
    configure(settings.log_format, settings.log_level)

    async def run() -> dict:
        deps = await open_deps(settings, pool_size=4)
        try:
            return await offboard_firm(deps, args.firm)
        finally:
            await close_deps(deps)

    print(json.dumps(asyncio.run(run())), flush=True)
    return 0


def add_parser(firm_sub: argparse._SubParsersAction) -> None:
    fd = firm_sub.add_parser("delete", help="offboarding: erase every person of the firm, keep a tombstone "
                                            "and the hashed consent ledger")
    fd.add_argument("--firm", type=int, required=True)
    fd.add_argument("--confirm", action="store_true", help="required: this cannot be undone")
    fd.set_defaults(run=cmd_firm_delete)
