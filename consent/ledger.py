"""Consent (opt-out / opt-in) per (firm, phone): the flag and its append-only history.

Every consent change of every path goes through these functions: an inbound keyword or
Advanced Opt-Out (the webhook's transaction), Twilio's 21610 (the send path), a staff
opt-out or its removal, a review decision, an imported list. Each writes one
`consent_events` row per actual change of state, in the caller's transaction: a second
STOP from an opted-out phone adds nothing. Every actual change also writes, in the same
transaction, the change feed's `consent.changed` event ({phone, kind, source, at}) and
`conversation.updated` for the phone's conversation (its `can_send` and notice changed),
so none reaches the ledger without reaching the feed. A list import's batch writes the
conversations' events and leaves the summary (`optouts.imported`) to its caller.

Who may lift an opt-out (design.md): the lead, by texting START. Staff may lift only
one whose latest source is `staff:` or `list:`. So a lead's own opt-out (a keyword or
21610) arriving on a phone already opted out by staff or a list is a change too: the
source becomes the lead's, and staff can no longer lift it.
"""

from __future__ import annotations

from typing import Sequence

import asyncpg

import events
from conversations import feed
from conversations import queries as conversation_queries

STAFF_PREFIX = "staff:"
LIST_PREFIX = "list:"
STAFF_LIFTABLE_PREFIXES = (STAFF_PREFIX, LIST_PREFIX)


def asked_by_lead(source: str) -> bool:
    """True for the sources only the lead can lift: a keyword or Twilio's 21610."""
    return source.startswith("keyword:") or source == "twilio_21610"


def staff_may_lift(source: str | None) -> bool:
    return bool(source) and source.startswith(STAFF_LIFTABLE_PREFIXES)


async def _record(conn: asyncpg.Connection, firm_id: int, phone_e164: str, kind: str, source: str,
                  message_sid: str | None, detail: str | None) -> None:
    """The ledger row, its feed event and the conversation's new shape, in the caller's transaction."""
    at = await conn.fetchval(
        """
        INSERT INTO consent_events (firm_id, phone_e164, kind, source, message_sid, detail)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING at
        """,
        firm_id, phone_e164, kind, source, message_sid, detail,
    )
    await events.record(conn, firm_id, "consent.changed",
                        {"phone": phone_e164, "kind": kind, "source": source, "at": at})
    await feed.phone_changed(conn, phone_e164, firm_id)


async def opt_out(conn: asyncpg.Connection, firm_id: int, phone_e164: str, source: str,
                  message_sid: str | None = None, detail: str | None = None) -> bool:
    """Opt the phone out for the firm; True when this changed the state (or, for the
    lead's own opt-out over a staff/list one, its source)."""
    changed = await conn.fetchval(
        """
        INSERT INTO phone_flags AS f (firm_id, phone_e164, opted_out, opted_out_at, opted_out_source)
        VALUES ($1, $2, true, clock_timestamp(), $3)
        ON CONFLICT (firm_id, phone_e164) DO UPDATE
            SET opted_out = true, opted_out_at = clock_timestamp(), opted_out_source = $3,
                updated_at = clock_timestamp()
            WHERE NOT f.opted_out
               OR ($4 AND (f.opted_out_source LIKE 'staff:%' OR f.opted_out_source LIKE 'list:%'))
        RETURNING true
        """,
        firm_id, phone_e164, source, asked_by_lead(source),
    )
    if changed:
        await _record(conn, firm_id, phone_e164, "opt_out", source, message_sid, detail)
    return bool(changed)


async def opt_in(conn: asyncpg.Connection, firm_id: int, phone_e164: str, source: str,
                 message_sid: str | None = None, detail: str | None = None) -> bool:
    """Opt the phone back in for the firm; True when this changed the state."""
    changed = await conn.fetchval(
        """
        UPDATE phone_flags SET opted_out = false, opted_out_at = NULL, opted_out_source = NULL,
                               updated_at = clock_timestamp()
        WHERE firm_id = $1 AND phone_e164 = $2 AND opted_out
        RETURNING true
        """,
        firm_id, phone_e164,
    )
    if changed:
        await _record(conn, firm_id, phone_e164, "opt_in", source, message_sid, detail)
    return bool(changed)


async def opt_out_many(conn: asyncpg.Connection, firm_id: int, phones: Sequence[str], source: str) -> list[str]:
    """`opt_out` for a batch of distinct phones (a list import), set-based: the phones
    whose state changed, each with its one ledger row. Phones opted out already, by any
    source, are left as they are (a list never takes an opt-out from the lead)."""
    rows = await conn.fetch(
        """
        WITH changed AS (
            INSERT INTO phone_flags AS f (firm_id, phone_e164, opted_out, opted_out_at, opted_out_source)
            SELECT $1, p, true, clock_timestamp(), $3 FROM unnest($2::text[]) AS p
            ON CONFLICT (firm_id, phone_e164) DO UPDATE
                SET opted_out = true, opted_out_at = clock_timestamp(), opted_out_source = $3,
                    updated_at = clock_timestamp()
                WHERE NOT f.opted_out
            RETURNING phone_e164
        ), logged AS (
            INSERT INTO consent_events (firm_id, phone_e164, kind, source)
            SELECT $1, phone_e164, 'opt_out', $3 FROM changed
        )
        SELECT phone_e164 FROM changed
        """,
        firm_id, list(phones), source,
    )
    changed = [r["phone_e164"] for r in rows]
    if changed:
        await feed.conversations_changed(conn, firm_id, await conversation_queries.ids_for_phones(conn, firm_id, changed))
    return changed
