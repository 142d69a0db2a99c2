"""PostgreSQL: the connection pool and the migration runner.

A pool belongs to the event loop that made it: the web app makes its own in a
`cleanup_ctx`, a worker on dramatiq's loop in `before_worker_boot`.
"""

from __future__ import annotations

import asyncio

import json
from importlib import resources
from typing import Any, Awaitable, Callable, TypeVar

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# pg_advisory_lock key for migrations: any constant that no other lock uses.
MIGRATION_LOCK_KEY = 0x1EAD5_0001
SWEEPER_LOCK_KEY = 0x1EAD5_0002


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class PoolConnection(asyncpg.Connection):
    """A pooled connection released without asyncpg's reset query, unless marked.

    On every release asyncpg runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;`: one more round trip per acquire, and four statements for PostgreSQL. In
    the profiles of a burst of status callbacks that was ~18% of the web's CPU and ~9% of
    the worker's (docs/benchmarks.md). Our code leaves no session state on a pooled
    connection: no session `SET`, `LISTEN` or cursor (`SET LOCAL` ends with its
    transaction, and asyncpg still rolls back a transaction left open). The one exception
    is a session advisory lock (the sweeper's pass): `keep_session_state()` marks the
    connection so its next release runs the full reset, whatever happened to the unlock.
    """

    __slots__ = ("_session_state",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session_state = False

    def keep_session_state(self) -> None:
        """This session took state a release must clear (an advisory lock)."""
        self._session_state = True

    def get_reset_query(self) -> str:
        if not self._session_state:
            return ""
        self._session_state = False
        return super().get_reset_query()


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=30,
        connection_class=PoolConnection,
        **kwargs,
    )


T = TypeVar("T")

# What PostgreSQL aborts a transaction with to let another go on: run it again.
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


async def retrying(run: Callable[[], Awaitable[T]], *, attempts: int = 3) -> T:
    """`run()` (which opens and commits its own transaction) again when PostgreSQL aborted
    it to break a deadlock or a serialization conflict: its work was rolled back, and the
    other side has gone on. Only for work that does nothing outside its transaction
    before it commits."""
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except RETRYABLE as exc:
            if attempt == attempts:
                raise
            log.warning("transaction_retried", attempt=attempt, error=type(exc).__name__)
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


# First line of a migration that must run outside a transaction (CREATE INDEX
# CONCURRENTLY refuses to run inside one). Its statements run one by one, each in its own
# implicit transaction; they are split at a semicolon that ends a line, so such a
# migration holds plain statements only (no function bodies). Make each statement safe to
# re-run after a crash half-way, e.g. `DROP INDEX CONCURRENTLY IF EXISTS x;` before
# `CREATE INDEX CONCURRENTLY x ...;` (a failed concurrent build leaves an invalid index).
NO_TRANSACTION_MARKER = "-- leadsms: no-transaction"


def runs_outside_transaction(sql: str) -> bool:
    return sql.lstrip("\ufeff").split("\n", 1)[0].strip() == NO_TRANSACTION_MARKER


def split_statements(sql: str) -> list[str]:
    """The statements of a no-transaction migration (comment-only chunks dropped)."""
    statements, current = [], []
    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current))
            current = []
    statements.append("\n".join(current))
    meaningful = []
    for stmt in statements:
        code = "\n".join(l for l in stmt.splitlines() if not l.strip().startswith("--")).strip()
        if code:
            meaningful.append(stmt.strip())
    return meaningful


def migration_files(folder: Any = None) -> list[tuple[str, str]]:
    """(version, sql) for every migration shipped with the package (or in `folder`), in order."""
    folder = folder if folder is not None else resources.files("shared") / "migrations"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".sql"):
            out.append((entry.name[: -len(".sql")], entry.read_text(encoding="utf-8")))
    return out


async def _take_lock_polling(conn: asyncpg.Connection, key: int) -> None:
    """Take the advisory lock by polling, not by blocking in `pg_advisory_lock`: a session
    blocked there holds a snapshot, and the lock holder's CREATE INDEX CONCURRENTLY waits
    for every such snapshot (PostgreSQL then reports a deadlock)."""
    delay = 0.02
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def migrate(dsn: str, *, folder: Any = None) -> list[str]:
    """Apply every migration not yet applied; returns the versions applied now.

    Safe to run from several processes at once: the whole run holds an advisory lock,
    and each migration commits together with its row in `schema_migrations` (one marked
    `NO_TRANSACTION_MARKER` records its row after its last statement succeeded).
    """
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await _take_lock_polling(conn, MIGRATION_LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, sql in migration_files(folder):
                if version in done:
                    continue
                if runs_outside_transaction(sql):
                    for statement in split_statements(sql):
                        await conn.execute(statement, timeout=None)
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                else:
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                applied_now.append(version)
                log.info("migration_applied", version=version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()
    return applied_now
