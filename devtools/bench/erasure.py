"""How long erasure takes: a person with many messages, and `firm delete` of a big firm.

    python -m devtools.bench.erasure --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres \\
        [--messages 10000] [--leads 1000000]

Creates a database of its own (dropped at the end), migrates it, and measures the
database part of each (intake/erasure.py, intake/offboarding.py): the messages carry
Twilio sids, so the erasure also records each for deletion, but no Twilio is called
(the deletions are a job per message, bounded by Twilio's rate, not by us). Leads come
from devtools/bench/generate_leads.py (COPY). Prints one JSON line. Not run by `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
import uuid

import asyncpg

from devtools.bench.generate_leads import generate_leads
from firms.service import add_firm
from intake import erasure
from intake.offboarding import offboard_firm
from shared.config import Settings
from shared.db import connect, create_pool, migrate
from shared.deps import Deps

PHONE = "+12125559001"


async def _person_with_messages(conn: asyncpg.Connection, firm_id: int, count: int) -> None:
    lead_id = await conn.fetchval(
        """INSERT INTO leads (firm_id, external_id, name, email, phone_raw, phone_e164, phone_status)
           VALUES ($1, 'bench-person', 'Bench Person', 'bench@example.com', $2, $2, 'valid') RETURNING id""",
        firm_id, PHONE)
    conv = await conn.fetchval(
        "INSERT INTO conversations (firm_id, phone_e164, lead_id) VALUES ($1, $2, $3) RETURNING id", firm_id, PHONE, lead_id)
    await conn.copy_records_to_table(
        "messages",
        records=[(firm_id, conv, "out", f"message {i} to the bench person", "delivered", f"SM{uuid.uuid4().hex}")
                 for i in range(count)],
        columns=("firm_id", "conversation_id", "direction", "body", "status", "twilio_sid"))
    await conn.execute("ANALYZE messages")


async def run(admin_dsn: str, messages: int, leads: int) -> dict:
    name = f"leadsms_bench_erasure_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    out: dict = {"messages": messages, "leads": leads}
    try:
        await migrate(dsn)
        settings = Settings(database_url=dsn, erasure_key=secrets.token_hex(32))
        pool = await create_pool(dsn, max_size=4)
        deps = Deps(settings=settings, pool=pool, redis=None)
        try:
            person_firm = (await add_firm(dsn, "Bench Person Firm", "+16465558001"))["firm_id"]
            big_firm = (await add_firm(dsn, "Bench Big Firm", "+16465558002"))["firm_id"]
            conn = await connect(dsn)
            try:
                await _person_with_messages(conn, person_firm, messages)
                started = time.monotonic()
                generated = await generate_leads(conn, big_firm, leads)
                out["generate_s"] = round(time.monotonic() - started, 1)
                out["generated"] = {k: v for k, v in generated.items() if k in ("leads", "phones")}
            finally:
                await conn.close()
            erasure_id = await erasure.request_erasure(deps, person_firm, "bench", phone=PHONE)
            started = time.monotonic()
            pending = await erasure.erase_person(deps, erasure_id)
            out["erase_person_s"] = round(time.monotonic() - started, 3)
            out["erase_person_twilio_deletions_queued"] = len(pending)
            started = time.monotonic()
            summary = await offboard_firm(deps, big_firm)
            out["firm_delete_s"] = round(time.monotonic() - started, 1)
            out["firm_delete_phones"] = summary["phones"]
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.bench.erasure", description=__doc__.split("\n")[0])
    p.add_argument("--admin-dsn", required=True, help="a PostgreSQL DSN allowed to CREATE DATABASE")
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--leads", type=int, default=1_000_000)
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.admin_dsn, args.messages, args.leads))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
