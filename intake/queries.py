"""SQL of intake: signups (`leads`) and keeping conversations on the newest one."""

from __future__ import annotations

from typing import Sequence

import asyncpg

from intake.validation import LeadInput
from lookup.queries import LOOKUP_INVALID

Conn = asyncpg.Connection | asyncpg.Pool

async def insert_lead(conn: Conn, firm_id: int, lead: LeadInput) -> asyncpg.Record | None:
    """Store a signup as it came, `pending`; None when the firm already has this external_id."""
    return await conn.fetchrow(
        """
        INSERT INTO leads (firm_id, external_id, name, email, event, phone_raw, signed_up_at, timezone, postal_code)
        VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()), $8, $9)
        ON CONFLICT (firm_id, external_id) DO NOTHING
        RETURNING id, phone_status
        """,
        firm_id, lead.external_id, lead.name, lead.email, lead.event, lead.phone_raw, lead.signed_up_at,
        lead.timezone, lead.postal_code,
    )


async def lead_by_external_id(conn: Conn, firm_id: int, external_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, phone_status FROM leads WHERE firm_id = $1 AND external_id = $2", firm_id, external_id,
    )


async def lead_for_firm(conn: Conn, firm_id: int, lead_id: int) -> asyncpg.Record | None:
    """One signup of the firm, with its cached line and the sendable decision's code."""
    return await conn.fetchrow(
        """
        SELECT l.id AS lead_id, l.external_id, l.name, l.email, l.event, l.phone_raw, l.phone_e164,
               l.phone_status, l.phone_error, l.signed_up_at, l.created_at, l.timezone, l.postal_code,
               pl.line_type, pl.carrier, pl.checked_at AS line_checked_at,
               send_block_code(l.firm_id, l.phone_status, l.phone_e164) AS code
        FROM leads l
        LEFT JOIN phone_lines pl ON pl.phone_e164 = l.phone_e164
        WHERE l.id = $1 AND l.firm_id = $2
        """,
        lead_id, firm_id,
    )


async def lead_to_validate(conn: Conn, lead_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT l.id, l.firm_id, l.phone_raw, l.phone_e164, l.phone_status, l.phone_error, f.default_region,
                  extract(epoch FROM now() - l.created_at)::float8 AS age_s
           FROM leads l JOIN firms f ON f.id = l.firm_id WHERE l.id = $1""",
        lead_id,
    )


async def set_phone(conn: Conn, lead_id: int, status: str, phone_e164: str | None, error: str | None) -> bool:
    """Record the verdict on a pending lead; False when it was no longer pending."""
    done = await conn.fetchval(
        """UPDATE leads SET phone_status = $2, phone_e164 = $3, phone_error = $4, updated_at = now()
           WHERE id = $1 AND phone_status = 'pending' RETURNING true""",
        lead_id, status, phone_e164, error,
    )
    return bool(done)


async def stale_pending_leads(conn: Conn, stale_after_s: float, limit: int) -> list[int]:
    """Leads pending for longer than `stale_after_s` and not re-enqueued within it;
    marks them re-enqueued now."""
    rows = await conn.fetch(
        """
        UPDATE leads SET requeued_at = now()
        WHERE id IN (
            SELECT id FROM leads
            WHERE phone_status = 'pending'
              AND created_at < now() - make_interval(secs => $1)
              AND (requeued_at IS NULL OR requeued_at < now() - make_interval(secs => $1))
            ORDER BY created_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
        RETURNING id
        """,
        float(stale_after_s), limit,
    )
    return [r["id"] for r in rows]


async def firm_region(conn: Conn, firm_id: int) -> str | None:
    return await conn.fetchval("SELECT default_region FROM firms WHERE id = $1", firm_id)


# ---- import: a batch at a time through a staging table -----------------------------------

STAGING_COLUMNS = ("external_id", "name", "email", "event", "phone_raw", "phone_e164", "phone_status",
                   "phone_error", "signed_up_at")


async def create_import_staging(conn: asyncpg.Connection) -> None:
    """A temp table emptied at each commit: one batch's rows, COPYed in."""
    await conn.execute(
        """CREATE TEMP TABLE IF NOT EXISTS import_batch (
               line integer NOT NULL, external_id text, name text, email text, event text,
               phone_raw text, phone_e164 text, phone_status text, phone_error text,
               signed_up_at timestamptz
           ) ON COMMIT DELETE ROWS"""
    )


async def copy_import_batch(conn: asyncpg.Connection, records: Sequence[tuple]) -> None:
    """`records`: (line, *STAGING_COLUMNS) tuples."""
    await conn.copy_records_to_table("import_batch", records=records, columns=("line", *STAGING_COLUMNS))


async def insert_import_batch(conn: asyncpg.Connection, firm_id: int) -> list[asyncpg.Record]:
    """Move the staged rows into `leads` (file order; existing external_ids skipped).

    A phone Lookup already called `valid: false` lands invalid, as validate_lead would
    have it. Returns (phone_e164, phone_status) of each row inserted.
    """
    return await conn.fetch(
        """
        INSERT INTO leads (firm_id, external_id, name, email, event, phone_raw, phone_e164,
                           phone_status, phone_error, signed_up_at)
        SELECT $1, b.external_id, b.name, b.email, b.event, b.phone_raw, b.phone_e164,
               CASE WHEN pl.valid IS FALSE THEN 'invalid' ELSE b.phone_status END,
               CASE WHEN pl.valid IS FALSE THEN $2 ELSE b.phone_error END,
               COALESCE(b.signed_up_at, now())
        FROM import_batch b
        LEFT JOIN phone_lines pl ON pl.phone_e164 = b.phone_e164 AND b.phone_status = 'valid'
        ORDER BY b.line
        ON CONFLICT (firm_id, external_id) DO NOTHING
        RETURNING phone_e164, phone_status
        """,
        firm_id, LOOKUP_INVALID,
    )
