"""SQL of firms. `$n` parameters only."""

from __future__ import annotations

import asyncpg


async def firm_with_number(conn: asyncpg.Connection, number: str) -> int | None:
    return await conn.fetchval("SELECT id FROM firms WHERE sms_number = $1", number)


async def insert_firm(conn: asyncpg.Connection, name: str, number: str, region: str, key_digest: str) -> int:
    return await conn.fetchval(
        "INSERT INTO firms (name, sms_number, default_region, api_key_sha256) VALUES ($1, $2, $3, $4) RETURNING id",
        name, number, region, key_digest,
    )


async def firm_by_id(conn: asyncpg.Connection | asyncpg.Pool, firm_id: int) -> asyncpg.Record | None:
    """The firm's name, default region and HELP reply (None: the default text)."""
    return await conn.fetchrow("SELECT id, name, default_region, help_text FROM firms WHERE id = $1", firm_id)


async def set_help_text(conn: asyncpg.Connection, firm_id: int, help_text: str | None) -> bool:
    return bool(await conn.fetchval("UPDATE firms SET help_text = $2 WHERE id = $1 RETURNING true", firm_id, help_text))
