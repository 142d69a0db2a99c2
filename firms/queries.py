"""SQL of firms. `$n` parameters only."""

from __future__ import annotations

import asyncpg


async def firm_with_number(conn: asyncpg.Connection, number: str) -> int | None:
    return await conn.fetchval("SELECT id FROM firms WHERE sms_number = $1", number)


async def insert_firm(conn: asyncpg.Connection, name: str, number: str, region: str, key_digest: str,
                      quiet_hours: str | None = None, timezone: str | None = None) -> int:
    return await conn.fetchval(
        """INSERT INTO firms (name, sms_number, default_region, api_key_sha256, quiet_hours, timezone)
           VALUES ($1, $2, $3, $4, COALESCE($5, '08:00-21:00'), $6) RETURNING id""",
        name, number, region, key_digest, quiet_hours, timezone,
    )


async def set_hours(conn: asyncpg.Connection, firm_id: int, timezone: str | None, set_timezone: bool,
                    quiet_hours: str | None) -> asyncpg.Record | None:
    """Change the firm's zone (when `set_timezone`; None = its number's) and/or texting
    hours; returns the row as it now is (None for an unknown firm)."""
    return await conn.fetchrow(
        """
        UPDATE firms SET timezone = CASE WHEN $3 THEN $2 ELSE timezone END,
                         quiet_hours = COALESCE($4, quiet_hours)
        WHERE id = $1
        RETURNING id, sms_number, timezone, quiet_hours
        """,
        firm_id, timezone, set_timezone, quiet_hours,
    )


async def firm_by_id(conn: asyncpg.Connection | asyncpg.Pool, firm_id: int) -> asyncpg.Record | None:
    """The firm's name, default region and HELP reply (None: the default text)."""
    return await conn.fetchrow("SELECT id, name, default_region, help_text FROM firms WHERE id = $1", firm_id)


async def set_help_text(conn: asyncpg.Connection, firm_id: int, help_text: str | None) -> bool:
    return bool(await conn.fetchval("UPDATE firms SET help_text = $2 WHERE id = $1 RETURNING true", firm_id, help_text))
