"""SQL of the Lookup cache (`phone_lines`, global: a line type is a fact about a number).

Lookup also owns one mark on `leads`: a phone Twilio calls `valid: false` is invalid for
every signup that has it, in every firm (`phone_error = 'lookup_invalid'`); a later
`valid: true` lifts exactly that mark and no other.
"""

from __future__ import annotations

from typing import Any, Sequence

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

LOOKUP_INVALID = "lookup_invalid"

_COLUMNS = "phone_e164, valid, line_type, carrier, checked_at"


async def cached_line(conn: Conn, phone_e164: str, max_age_s: float) -> asyncpg.Record | None:
    """The cached answer for a phone however old, with `fresh`: checked less than
    `max_age_s` seconds ago."""
    return await conn.fetchrow(
        f"""SELECT {_COLUMNS}, checked_at > now() - make_interval(secs => $2) AS fresh
            FROM phone_lines WHERE phone_e164 = $1""",
        phone_e164, float(max_age_s),
    )


async def fresh_line(conn: Conn, phone_e164: str, max_age_s: float) -> asyncpg.Record | None:
    """The cached answer when it was checked less than `max_age_s` seconds ago."""
    return await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM phone_lines
            WHERE phone_e164 = $1 AND checked_at > now() - make_interval(secs => $2)""",
        phone_e164, float(max_age_s),
    )


async def store_line(conn: Conn, phone_e164: str, *, valid: bool, line_type: str | None,
                     carrier: str | None, raw: dict[str, Any]) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        INSERT INTO phone_lines (phone_e164, valid, line_type, carrier, checked_at, raw)
        VALUES ($1, $2, $3, $4, now(), $5)
        ON CONFLICT (phone_e164) DO UPDATE
            SET valid = EXCLUDED.valid, line_type = EXCLUDED.line_type, carrier = EXCLUDED.carrier,
                checked_at = EXCLUDED.checked_at, raw = EXCLUDED.raw
        RETURNING {_COLUMNS}
        """,
        phone_e164, valid, line_type, carrier, raw,
    )


async def record_fact(conn: Conn, phone_e164: str, *, valid: bool, line_type: str | None, source: str) -> None:
    """What a send taught us about a line (Twilio's 21614: a landline; 21211 or 30005: no
    such number), cached as if Lookup had answered it now. The carrier stays as known."""
    await conn.execute(
        """
        INSERT INTO phone_lines (phone_e164, valid, line_type, checked_at, raw)
        VALUES ($1, $2, $3, now(), jsonb_build_object('source', $4::text))
        ON CONFLICT (phone_e164) DO UPDATE
            SET valid = EXCLUDED.valid, line_type = EXCLUDED.line_type,
                checked_at = EXCLUDED.checked_at, raw = EXCLUDED.raw
        """,
        phone_e164, valid, line_type, source,
    )


async def mark_leads_invalid(conn: Conn, phone_e164: str, reason: str = LOOKUP_INVALID) -> int:
    """Every valid signup with this phone, in every firm, becomes invalid; how many."""
    result = await conn.execute(
        """UPDATE leads SET phone_status = 'invalid', phone_error = $2, updated_at = now()
           WHERE phone_e164 = $1 AND phone_status = 'valid'""",
        phone_e164, reason,
    )
    return int(result.split()[-1])


async def unmark_leads_invalid(conn: Conn, phone_e164: str) -> int:
    """Lift the phone-level invalid mark (Lookup now calls the phone valid); how many.

    A signup whose phone failed the format checks has no E.164, so only marks made from
    what Lookup or a send said about the number match here."""
    result = await conn.execute(
        """UPDATE leads SET phone_status = 'valid', phone_error = NULL, updated_at = now()
           WHERE phone_e164 = $1 AND phone_status = 'invalid'""",
        phone_e164,
    )
    return int(result.split()[-1])


async def waiting_leads_age_s(conn: Conn, phone_e164: str, since: Any, horizon_s: float,
                              limit: int = 100) -> list[float]:
    """Seconds since intake of the signups with this phone that arrived after `since`
    (None: ever) and within `horizon_s`, newest first: the ones an answer now resolves."""
    rows = await conn.fetch(
        """SELECT extract(epoch FROM now() - created_at)::float8 AS age FROM leads
           WHERE phone_e164 = $1 AND created_at > COALESCE($2, '-infinity'::timestamptz)
             AND created_at > now() - make_interval(secs => $3)
           ORDER BY created_at DESC LIMIT $4""",
        phone_e164, since, float(horizon_s), limit,
    )
    return [r["age"] for r in rows]


# ---- many phones at once (intake's batches) ----------------------------------------------

async def cached_lines(conn: Conn, phones: Sequence[str], max_age_s: float) -> dict[str, asyncpg.Record]:
    """`cached_line` for several phones: phone -> its row (with `fresh`), for those cached."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS}, checked_at > now() - make_interval(secs => $2) AS fresh
            FROM phone_lines WHERE phone_e164 = ANY($1::text[])""",
        list(phones), float(max_age_s),
    )
    return {r["phone_e164"]: r for r in rows}


async def store_lines(conn: Conn, phones: Sequence[str], valids: Sequence[bool], line_types: Sequence[str | None],
                      carriers: Sequence[str | None], raws: Sequence[str]) -> list[asyncpg.Record]:
    """`store_line` for several answers (raw as JSON text), in one statement."""
    return await conn.fetch(
        f"""
        INSERT INTO phone_lines (phone_e164, valid, line_type, carrier, checked_at, raw)
        SELECT p, v, t, c, now(), r::jsonb
        FROM unnest($1::text[], $2::bool[], $3::text[], $4::text[], $5::text[]) AS u(p, v, t, c, r)
        ON CONFLICT (phone_e164) DO UPDATE
            SET valid = EXCLUDED.valid, line_type = EXCLUDED.line_type, carrier = EXCLUDED.carrier,
                checked_at = EXCLUDED.checked_at, raw = EXCLUDED.raw
        RETURNING {_COLUMNS}
        """,
        list(phones), list(valids), list(line_types), list(carriers), list(raws),
    )


async def mark_leads_invalid_many(conn: Conn, phones: Sequence[str], reason: str = LOOKUP_INVALID) -> int:
    """`mark_leads_invalid` for several phones."""
    if not phones:
        return 0
    result = await conn.execute(
        """UPDATE leads SET phone_status = 'invalid', phone_error = $2, updated_at = now()
           WHERE phone_e164 = ANY($1::text[]) AND phone_status = 'valid'""",
        list(phones), reason,
    )
    return int(result.split()[-1])


async def unmark_leads_invalid_many(conn: Conn, phones: Sequence[str]) -> int:
    """`unmark_leads_invalid` for several phones."""
    if not phones:
        return 0
    result = await conn.execute(
        """UPDATE leads SET phone_status = 'valid', phone_error = NULL, updated_at = now()
           WHERE phone_e164 = ANY($1::text[]) AND phone_status = 'invalid'""",
        list(phones),
    )
    return int(result.split()[-1])


async def waiting_leads_ages_many(conn: Conn, phones: Sequence[str], since: Sequence[Any], horizon_s: float,
                                  limit: int = 100) -> list[float]:
    """`waiting_leads_age_s` for several phones (each with its own `since`)."""
    rows = await conn.fetch(
        """SELECT w.age FROM unnest($1::text[], $2::timestamptz[]) AS u(phone, since)
           CROSS JOIN LATERAL (
               SELECT extract(epoch FROM now() - created_at)::float8 AS age FROM leads
               WHERE phone_e164 = u.phone AND created_at > COALESCE(u.since, '-infinity'::timestamptz)
                 AND created_at > now() - make_interval(secs => $3)
               ORDER BY created_at DESC LIMIT $4) AS w""",
        list(phones), list(since), float(horizon_s), limit,
    )
    return [r["age"] for r in rows]
