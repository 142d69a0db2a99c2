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
