"""SQL of firms: numbers with history, Twilio identity, API keys, pauses. `$n` parameters only."""

from __future__ import annotations

from datetime import datetime

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def firm_with_number(conn: Conn, number: str) -> int | None:
    """The firm that owns `number` now (its default or any other current number)."""
    return await conn.fetchval(
        """SELECT firm_id FROM firm_numbers WHERE number = $1 AND removed_at IS NULL
           UNION ALL SELECT id FROM firms WHERE sms_number = $1 LIMIT 1""",
        number,
    )


async def insert_firm(conn: Conn, name: str, number: str, region: str, key_digest: str,
                      quiet_hours: str | None = None, timezone: str | None = None) -> int:
    return await conn.fetchval(
        """WITH f AS (INSERT INTO firms (name, sms_number, default_region, api_key_sha256, quiet_hours, timezone)
                      VALUES ($1, $2, $3, $4, COALESCE($5, '08:00-21:00'), $6) RETURNING id),
                n AS (INSERT INTO firm_numbers (firm_id, number) SELECT id, $2 FROM f)
           SELECT id FROM f""",
        name, number, region, key_digest, quiet_hours, timezone,
    )


async def lock_firm(conn: Conn, firm_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, name, sms_number, messaging_service_sid, twilio_account_sid, twilio_auth_token_enc,
                  paused_at, paused_code, paused_reason
           FROM firms WHERE id = $1 FOR UPDATE""",
        firm_id,
    )


# ---- numbers -------------------------------------------------------------------------------

async def current_numbers(conn: Conn, firm_id: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT number FROM firm_numbers WHERE firm_id = $1 AND removed_at IS NULL ORDER BY added_at, id", firm_id
    )
    return [r["number"] for r in rows]


async def add_number(conn: Conn, firm_id: int, number: str) -> None:
    await conn.execute("INSERT INTO firm_numbers (firm_id, number) VALUES ($1, $2)", firm_id, number)


async def remove_number(conn: Conn, firm_id: int, number: str) -> bool:
    return bool(await conn.fetchval(
        """UPDATE firm_numbers SET removed_at = clock_timestamp()
           WHERE firm_id = $1 AND number = $2 AND removed_at IS NULL RETURNING true""",
        firm_id, number,
    ))


async def set_default_number(conn: Conn, firm_id: int, number: str) -> None:
    await conn.execute("UPDATE firms SET sms_number = $2 WHERE id = $1", firm_id, number)


async def firm_for_number(conn: Conn, number: str, messaging_service_sid: str | None = None) -> asyncpg.Record | None:
    """The firm an inbound text to `number` belongs to: its current owner, else the firm
    that had it last; else (a Messaging Service's pooled number) the service's firm. An
    offboarded firm (`leadsms firm delete`) gets nothing: its people are erased."""
    return await conn.fetchrow(
        """
        SELECT f.id, f.default_region, f.twilio_account_sid FROM (
            SELECT n.firm_id, 0 AS rank, n.removed_at FROM firm_numbers n WHERE n.number = $1
            UNION ALL SELECT id, 1, NULL FROM firms WHERE sms_number = $1
            UNION ALL SELECT id, 2, NULL FROM firms WHERE $2::text IS NOT NULL AND messaging_service_sid = $2
        ) o JOIN firms f ON f.id = o.firm_id AND f.deleted_at IS NULL  -- not an offboarded firm
        ORDER BY o.rank, o.removed_at DESC NULLS FIRST
        LIMIT 1
        """,
        number, messaging_service_sid,
    )


# ---- Twilio identity -----------------------------------------------------------------------

async def set_messaging_service(conn: Conn, firm_id: int, sid: str | None) -> None:
    await conn.execute("UPDATE firms SET messaging_service_sid = $2 WHERE id = $1", firm_id, sid)


async def set_subaccount(conn: Conn, firm_id: int, account_sid: str | None, token_enc: str | None) -> None:
    await conn.execute(
        "UPDATE firms SET twilio_account_sid = $2, twilio_auth_token_enc = $3 WHERE id = $1",
        firm_id, account_sid, token_enc,
    )


async def subaccount_token(conn: Conn, account_sid: str) -> str | None:
    """The encrypted token of a subaccount some firm uses (None when no firm does)."""
    return await conn.fetchval(
        "SELECT twilio_auth_token_enc FROM firms WHERE twilio_account_sid = $1 LIMIT 1", account_sid
    )


# ---- API keys ------------------------------------------------------------------------------

async def firm_for_previous_key(conn: Conn, digest: str) -> asyncpg.Record | None:
    """(id, expires_at) for a previous key still in its grace after a rotation."""
    return await conn.fetchrow(
        """SELECT id, previous_api_key_expires_at AS expires_at FROM firms
           WHERE previous_api_key_sha256 = $1 AND previous_api_key_expires_at > now()""",
        digest,
    )


async def rotate_key(conn: Conn, firm_id: int, new_digest: str, grace_s: float) -> datetime | None:
    """The new key becomes current; the old one works `grace_s` more. Returns when it stops."""
    return await conn.fetchval(
        """UPDATE firms SET previous_api_key_sha256 = CASE WHEN $3 > 0 THEN api_key_sha256 END,
                            previous_api_key_expires_at = CASE WHEN $3 > 0 THEN now() + make_interval(secs => $3) END,
                            api_key_sha256 = $2
           WHERE id = $1 RETURNING coalesce(previous_api_key_expires_at, now())""",
        firm_id, new_digest, float(grace_s),
    )


# ---- pauses (an account-level Twilio error) --------------------------------------------------

async def pause_firm(conn: Conn, firm_id: int, code: int | None, reason: str) -> bool:
    """True when this call paused it (it was not paused already)."""
    return bool(await conn.fetchval(
        """UPDATE firms SET paused_at = now(), paused_code = $2, paused_reason = $3
           WHERE id = $1 AND paused_at IS NULL RETURNING true""",
        firm_id, code, reason,
    ))


async def resume_firm(conn: Conn, firm_id: int) -> bool:
    return bool(await conn.fetchval(
        """UPDATE firms SET paused_at = NULL, paused_code = NULL, paused_reason = NULL
           WHERE id = $1 AND paused_at IS NOT NULL RETURNING true""",
        firm_id,
    ))


async def pause_account(conn: Conn, account_sid: str, code: int, reason: str) -> bool:
    return bool(await conn.fetchval(
        """INSERT INTO twilio_account_pauses (account_sid, code, reason) VALUES ($1, $2, $3)
           ON CONFLICT (account_sid) DO NOTHING RETURNING true""",
        account_sid, code, reason,
    ))


async def paused_accounts(conn: Conn) -> list[asyncpg.Record]:
    """Paused accounts with the encrypted token when it is a firm's subaccount."""
    return await conn.fetch(
        """SELECT p.account_sid, p.code, p.reason, p.paused_at, p.probed_at,
                  (SELECT f.twilio_auth_token_enc FROM firms f WHERE f.twilio_account_sid = p.account_sid LIMIT 1)
                      AS token_enc,
                  (SELECT array_agg(f.id ORDER BY f.id) FROM firms f WHERE f.twilio_account_sid = p.account_sid)
                      AS firm_ids
           FROM twilio_account_pauses p ORDER BY p.paused_at"""
    )


async def mark_probed(conn: Conn, account_sid: str) -> None:
    await conn.execute("UPDATE twilio_account_pauses SET probed_at = now() WHERE account_sid = $1", account_sid)


async def resume_account(conn: Conn, account_sid: str) -> bool:
    return bool(await conn.fetchval(
        "DELETE FROM twilio_account_pauses WHERE account_sid = $1 RETURNING true", account_sid
    ))


async def paused_firms(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, name, paused_at, paused_code, paused_reason FROM firms WHERE paused_at IS NOT NULL ORDER BY paused_at"
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
