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


def test_migrations_after_0007_are_numbered_without_gaps():
    """0001-0007 keep their numbers (0005 never existed); from 0008 on, no gap, no repeat."""
    numbers = [int(version.split("_", 1)[0]) for version, _ in migration_files()]
    assert numbers == sorted(numbers) and len(numbers) == len(set(numbers)), numbers
    later = [n for n in numbers if n > 7]
    assert later == list(range(8, 8 + len(later))), f"migration numbers after 0007 have a gap: {later}"


CONCURRENT_INDEX = """{marker}
-- messages by body: a big table, so the index is built without locking out writes
DROP INDEX CONCURRENTLY IF EXISTS notes_body;
CREATE INDEX CONCURRENTLY notes_body
    ON notes (body);
"""


async def _migrate_folder(services, tmp_path, marker: str):
    (tmp_path / "0001_notes.sql").write_text("CREATE TABLE notes (id bigserial PRIMARY KEY, body text);\n"
                                             "INSERT INTO notes (body) SELECT 'n' || g FROM generate_series(1, 500) g;\n")
    (tmp_path / "0002_notes_index.sql").write_text(CONCURRENT_INDEX.format(marker=marker))
    name, dsn = await create_database(services.admin_dsn)
    return name, dsn, migrate(dsn, folder=tmp_path)


async def test_a_migration_marked_no_transaction_builds_its_index_concurrently(services, tmp_path):
    name, dsn, run = await _migrate_folder(services, tmp_path, "-- leadsms: no-transaction")
    try:
        assert await run == ["0001_notes", "0002_notes_index"]
        assert await migrate(dsn, folder=tmp_path) == []
        conn = await asyncpg.connect(dsn)
        try:
            valid = await conn.fetchval("SELECT indisvalid FROM pg_index WHERE indexrelid = 'notes_body'::regclass")
        finally:
            await conn.close()
        assert valid is True
    finally:
        await drop_database(services.admin_dsn, name)


async def test_a_concurrent_index_without_the_marker_fails_and_records_nothing(services, tmp_path):
    name, dsn, run = await _migrate_folder(services, tmp_path, "-- (no marker)")
    try:
        with pytest.raises(asyncpg.exceptions.ActiveSQLTransactionError):
            await run
        _, versions = await _schema(dsn)
        assert versions == ["0001_notes"]
    finally:
        await drop_database(services.admin_dsn, name)
