import asyncio

import asyncpg
import pytest

from shared.db import migrate, migration_files
from tests.support import ROOT, create_database, drop_database, leadsms_command

EXPECTED_TABLES = {
    "firms", "leads", "phone_lines", "phone_flags", "consent_events", "phone_flag_events",
    "conversations", "messages", "twilio_inbox", "schema_migrations",
}


async def _schema(dsn):
    conn = await asyncpg.connect(dsn)
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
        return tables, versions
    finally:
        await conn.close()


async def test_migrating_twice_applies_each_migration_once(services):
    name, dsn = await create_database(services.admin_dsn)
    try:
        first = await migrate(dsn)
        second = await migrate(dsn)
        assert first == [v for v, _ in migration_files()]
        assert second == []
        tables, versions = await _schema(dsn)
        assert EXPECTED_TABLES <= tables
        assert versions == first
    finally:
        await drop_database(services.admin_dsn, name)


async def test_four_migrate_processes_at_once_leave_one_correct_schema(services):
    name, dsn = await create_database(services.admin_dsn)
    try:
        env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": dsn}
        procs = [
            await asyncio.create_subprocess_exec(*leadsms_command("migrate"), cwd=ROOT, env=env,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            for _ in range(4)
        ]
        results = [await p.communicate() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], results
        tables, versions = await _schema(dsn)
        assert EXPECTED_TABLES <= tables
        assert versions == [v for v, _ in migration_files()]
    finally:
        await drop_database(services.admin_dsn, name)


async def test_the_schema_refuses_a_status_outside_the_design_table(pool, firm):
    async with pool.acquire() as conn:
        conv = await conn.fetchval(
            "INSERT INTO conversations (firm_id, phone_e164) VALUES ($1, '+12125550142') RETURNING id", firm.id)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO messages (firm_id, conversation_id, direction, body, status) VALUES ($1, $2, 'out', 'hi', 'lost')",
                firm.id, conv)
        for status in ("queued", "sent", "delivered", "undelivered", "failed"):
            await conn.execute(
                "INSERT INTO messages (firm_id, conversation_id, direction, body, status) VALUES ($1, $2, 'out', 'hi', $3)",
                firm.id, conv, status)


async def test_consent_events_cannot_be_rewritten(pool, firm):
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO consent_events (firm_id, phone_e164, kind, source) VALUES ($1, '+12125550142', 'opt_out', 'keyword:stop')",
            firm.id)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM consent_events")
