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


async def update_import_batch(conn: asyncpg.Connection, firm_id: int) -> list[asyncpg.Record]:
    """Rows of the batch whose external_id the firm has, with changed fields: the signup
    takes the row's values (validated inline, like an insert; a signed_up_at left empty
    keeps the stored one). The last line of an external_id wins. Returns (id, old_phone,
    phone_e164) of each signup changed; the self-join reads the values before the update."""
    return await conn.fetch(
        """
        WITH src AS (
            SELECT DISTINCT ON (b.external_id) b.*,
                   CASE WHEN pl.valid IS FALSE THEN 'invalid' ELSE b.phone_status END AS status,
                   CASE WHEN pl.valid IS FALSE THEN $2 ELSE b.phone_error END AS error
            FROM import_batch b
            LEFT JOIN phone_lines pl ON pl.phone_e164 = b.phone_e164 AND b.phone_status = 'valid'
            ORDER BY b.external_id, b.line DESC
        )
        UPDATE leads l SET name = s.name, email = s.email, event = s.event, phone_raw = s.phone_raw,
               phone_e164 = s.phone_e164, phone_status = s.status, phone_error = s.error,
               signed_up_at = COALESCE(s.signed_up_at, o.signed_up_at), updated_at = now()
        FROM src s, leads o
        WHERE l.firm_id = $1 AND l.external_id = s.external_id AND o.id = l.id
          AND ((o.name, o.email, o.event, o.signed_up_at)
                   IS DISTINCT FROM (s.name, s.email, s.event, COALESCE(s.signed_up_at, o.signed_up_at))
               OR CASE WHEN o.phone_e164 IS NOT NULL AND s.phone_e164 IS NOT NULL  -- formatting is no change
                       THEN o.phone_e164 <> s.phone_e164
                       ELSE o.phone_raw IS DISTINCT FROM s.phone_raw END)
        RETURNING l.id, o.phone_e164 AS old_phone, l.phone_e164
        """,
        firm_id, LOOKUP_INVALID,
    )


# ---- updates and deletes by the CRM ------------------------------------------------------

async def lock_lead(conn: asyncpg.Connection, firm_id: int, *, lead_id: int | None = None,
                    external_id: str | None = None, to_delete: bool = False) -> asyncpg.Record | None:
    """The firm's signup (by id or external_id), locked for the transaction.

    To change it: FOR NO KEY UPDATE, the lock PostgreSQL takes itself for an UPDATE that
    leaves the key alone. Writers of the lead still wait for each other, but a foreign-key
    check on it (FOR KEY SHARE: an inbound text filing into its conversation re-checks
    the conversation's lead) does not wait; with FOR UPDATE, that check waited for this
    transaction while this one waited for the conversation: a deadlock (the CRM's PATCH
    answered 500). To delete it: FOR UPDATE."""
    strength = "UPDATE" if to_delete else "NO KEY UPDATE"
    return await conn.fetchrow(
        f"""SELECT l.id, l.firm_id, l.name, l.email, l.event, l.phone_raw, l.phone_e164, l.phone_status,
                  l.signed_up_at, l.timezone, l.postal_code, f.default_region
           FROM leads l JOIN firms f ON f.id = l.firm_id
           WHERE l.firm_id = $1 AND (l.id = $2 OR l.external_id = $3) FOR {strength} OF l""",
        firm_id, lead_id, external_id,
    )


async def update_lead(conn: asyncpg.Connection, lead_id: int, fields: dict, *, phone_changed: bool) -> asyncpg.Record:
    """Write the changed columns; a changed phone makes the signup `pending` again (judged
    afresh by validate_lead). `fields` holds only `leads` columns of UPDATABLE_FIELDS."""
    return await conn.fetchrow(
        """
        UPDATE leads SET
            name = COALESCE($2, name), email = COALESCE($3, email), event = COALESCE($4, event),
            phone_raw = CASE WHEN $5 THEN $6 ELSE phone_raw END,
            phone_e164 = CASE WHEN $5 THEN NULL ELSE phone_e164 END,
            phone_status = CASE WHEN $5 THEN 'pending' ELSE phone_status END,
            phone_error = CASE WHEN $5 THEN NULL ELSE phone_error END,
            requeued_at = CASE WHEN $5 THEN NULL ELSE requeued_at END,
            signed_up_at = COALESCE($7, signed_up_at),
            timezone = CASE WHEN $8 THEN $9 ELSE timezone END,
            postal_code = CASE WHEN $10 THEN $11 ELSE postal_code END,
            updated_at = now()
        WHERE id = $1
        RETURNING id, phone_status
        """,
        lead_id, fields.get("name"), fields.get("email"), fields.get("event"),
        phone_changed, fields.get("phone_raw"), fields.get("signed_up_at"),
        "timezone" in fields, fields.get("timezone"), "postal_code" in fields, fields.get("postal_code"),
    )


async def cancel_scheduled_to_phone(conn: asyncpg.Connection, firm_id: int, lead_id: int, phone_e164: str) -> list[int]:
    """The lead left this phone: its conversation's `scheduled` messages, written to this
    lead, are `canceled` (they were meant for the person, not for whoever has the number)."""
    rows = await conn.fetch(
        """
        UPDATE messages m SET status = 'canceled', updated_at = clock_timestamp()
        FROM conversations c
        WHERE c.firm_id = $1 AND c.phone_e164 = $2 AND c.lead_id = $3
          AND m.conversation_id = c.id AND m.status = 'scheduled'
        RETURNING m.id
        """,
        firm_id, phone_e164, lead_id,
    )
    return [r["id"] for r in rows]


async def delete_lead(conn: asyncpg.Connection, firm_id: int, lead_id: int) -> asyncpg.Record | None:
    """Remove the firm's signup; its phone (for the relink), or None when not the firm's."""
    return await conn.fetchrow(
        "DELETE FROM leads WHERE id = $1 AND firm_id = $2 RETURNING id, phone_e164", lead_id, firm_id,
    )


# ---- validation in batches (intake/validate_batch.py) ------------------------------------

async def leads_to_validate(conn: Conn, lead_ids: Sequence[int]) -> list[asyncpg.Record]:
    """What validation needs of these leads (phone, status, firm region, age), in id order."""
    return await conn.fetch(
        """SELECT l.id, l.firm_id, l.phone_raw, l.phone_e164, l.phone_status, l.phone_error, f.default_region,
                  extract(epoch FROM now() - l.created_at)::float8 AS age_s
           FROM leads l JOIN firms f ON f.id = l.firm_id WHERE l.id = ANY($1::bigint[]) ORDER BY l.id""",
        list(lead_ids),
    )


async def set_phones(conn: asyncpg.Connection, lead_ids: Sequence[int], statuses: Sequence[str],
                     phones: Sequence[str | None], errors: Sequence[str | None]) -> set[int]:
    """Record the verdicts on these leads (locked first in id order), only where still
    pending; the ids set."""
    await conn.execute(
        "SELECT 1 FROM leads WHERE id = ANY($1::bigint[]) AND phone_status = 'pending' ORDER BY id FOR UPDATE",
        list(lead_ids),
    )
    rows = await conn.fetch(
        """UPDATE leads l SET phone_status = u.status, phone_e164 = u.phone, phone_error = u.error, updated_at = now()
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(id, status, phone, error)
           WHERE l.id = u.id AND l.phone_status = 'pending'
           RETURNING l.id""",
        list(lead_ids), list(statuses), list(phones), list(errors),
    )
    return {r["id"] for r in rows}


async def lock_pending_leads(conn: asyncpg.Connection, lead_ids: Sequence[int]) -> list[asyncpg.Record]:
    """(id, phone_raw) of these leads still pending, locked in id order for the transaction
    (a lead before its conversation: the order a lead update takes them in)."""
    return await conn.fetch(
        "SELECT id, phone_raw FROM leads WHERE id = ANY($1::bigint[]) AND phone_status = 'pending' "
        "ORDER BY id FOR UPDATE",
        list(lead_ids),
    )
