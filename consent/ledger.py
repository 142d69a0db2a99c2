"""Consent (opt-out / opt-in) per (firm, phone): the flag and its append-only history.

Called inside the caller's transaction: the inbound webhook writes the change together
with its inbox row; the send path writes it when Twilio answers 21610. One
`consent_events` row per actual change of state: a second STOP from an opted-out phone
adds nothing.

Every actual change also writes, in the same transaction, the change feed's
`consent.changed` event ({phone, kind, source, at}) and `conversation.updated` for the
phone's conversation (its `can_send` and notice changed). Every consent change goes
through `opt_out` / `opt_in`, so none reaches the ledger without reaching the feed.
"""

from __future__ import annotations

import asyncpg

import events
from conversations import feed


async def opt_out(conn: asyncpg.Connection, firm_id: int, phone_e164: str, source: str,
                  message_sid: str | None = None) -> bool:
    """Opt the phone out for the firm; True when this changed the state."""
    changed = await conn.fetchval(
        """
        INSERT INTO phone_flags AS f (firm_id, phone_e164, opted_out, opted_out_at, opted_out_source)
        VALUES ($1, $2, true, clock_timestamp(), $3)
        ON CONFLICT (firm_id, phone_e164) DO UPDATE
            SET opted_out = true, opted_out_at = clock_timestamp(), opted_out_source = $3,
                updated_at = clock_timestamp()
            WHERE NOT f.opted_out
        RETURNING true
        """,
        firm_id, phone_e164, source,
    )
    if changed:
        await _record_change(conn, firm_id, phone_e164, "opt_out", source, message_sid)
    return bool(changed)


async def opt_in(conn: asyncpg.Connection, firm_id: int, phone_e164: str, source: str,
                 message_sid: str | None = None) -> bool:
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
        await _record_change(conn, firm_id, phone_e164, "opt_in", source, message_sid)
    return bool(changed)


async def _record_change(conn: asyncpg.Connection, firm_id: int, phone_e164: str, kind: str, source: str,
                         message_sid: str | None) -> None:
    """The ledger row, its feed event and the conversation's new shape, in the caller's transaction."""
    at = await conn.fetchval(
        "INSERT INTO consent_events (firm_id, phone_e164, kind, source, message_sid) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING at",
        firm_id, phone_e164, kind, source, message_sid,
    )
    await events.record(conn, firm_id, "consent.changed",
                        {"phone": phone_e164, "kind": kind, "source": source, "at": at})
    await feed.phone_changed(conn, phone_e164, firm_id)
