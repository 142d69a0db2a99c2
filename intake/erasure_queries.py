"""SQL of erasure: finding a person's rows in a firm and removing them (intake/erasure.py)."""

from __future__ import annotations

from typing import Sequence

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def insert_erasure(conn: Conn, firm_id: int, requested_by: str, phone: str | None, lead_id: int | None) -> int:
    return await conn.fetchval(
        """INSERT INTO erasures (firm_id, requested_by, subject_phone, subject_lead)
           VALUES ($1, $2, $3, $4) RETURNING id""",
        firm_id, requested_by, phone, lead_id,
    )


async def erasure_for_firm(conn: Conn, firm_id: int, erasure_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, requested_at, done_at FROM erasures WHERE id = $1 AND firm_id = $2", erasure_id, firm_id,
    )


async def lock_erasure(conn: asyncpg.Connection, erasure_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT e.*, f.twilio_account_sid FROM erasures e JOIN firms f ON f.id = e.firm_id
           WHERE e.id = $1 FOR UPDATE OF e""",
        erasure_id,
    )


async def person_phones(conn: Conn, firm_id: int, phones: Sequence[str], lead_ids: Sequence[int]) -> tuple[list[str], list[int]]:
    """Every phone and signup of the person in the firm: the signups that ever had one of
    these phones (or are these leads), and every phone those signups ever had, to a fixed
    point (lead_phones and leads, by index)."""
    row = await conn.fetchrow(
        """
        WITH RECURSIVE person(phone, lead_id) AS (
            SELECT p, NULL::bigint FROM unnest($2::text[]) AS p
            UNION
            SELECT NULL::text, l FROM unnest($3::bigint[]) AS l
            UNION
            SELECT x.phone, x.lead_id FROM person s
            CROSS JOIN LATERAL (
                SELECT lp.phone_e164 AS phone, lp.lead_id FROM lead_phones lp
                WHERE lp.firm_id = $1 AND (lp.phone_e164 = s.phone OR lp.lead_id = s.lead_id)
                UNION
                SELECT l.phone_e164, l.id FROM leads l
                WHERE l.firm_id = $1 AND (l.id = s.lead_id OR l.phone_e164 = s.phone)
            ) x
        )
        SELECT array_agg(DISTINCT phone) FILTER (WHERE phone IS NOT NULL) AS phones,
               array_agg(DISTINCT lead_id) FILTER (WHERE lead_id IS NOT NULL) AS lead_ids
        FROM person
        """,
        firm_id, list(phones), list(lead_ids),
    )
    return sorted(row["phones"] or []), sorted(row["lead_ids"] or [])


async def cancel_unsent(conn: Conn, firm_id: int, phones: Sequence[str]) -> int:
    """The person's queued and scheduled messages: `canceled`, so no worker claims them."""
    result = await conn.execute(
        """UPDATE messages m SET status = 'canceled', updated_at = clock_timestamp()
           FROM conversations c
           WHERE c.firm_id = $1 AND c.phone_e164 = ANY($2::text[]) AND m.conversation_id = c.id
             AND m.status IN ('queued', 'scheduled')""",
        firm_id, list(phones),
    )
    return int(result.split()[-1])


async def lock_person_messages(conn: asyncpg.Connection, firm_id: int, phones: Sequence[str]) -> list[asyncpg.Record]:
    """The person's conversations and messages, locked: a worker's claim either committed
    before (seen as `sending`) or waits and then finds the row gone."""
    await conn.execute(
        "SELECT 1 FROM conversations WHERE firm_id = $1 AND phone_e164 = ANY($2::text[]) ORDER BY id FOR UPDATE",
        firm_id, list(phones),
    )
    return await conn.fetch(
        """SELECT m.conversation_id, m.id AS message_id, m.status, m.twilio_sid
           FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE c.firm_id = $1 AND c.phone_e164 = ANY($2::text[])
           ORDER BY m.id FOR UPDATE OF m""",
        firm_id, list(phones),
    )


async def conversation_ids(conn: Conn, firm_id: int, phones: Sequence[str]) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM conversations WHERE firm_id = $1 AND phone_e164 = ANY($2::text[]) ORDER BY id",
        firm_id, list(phones),
    )
    return [r["id"] for r in rows]


async def remember_erased_messages(conn: Conn, erasure_id: int, firm_id: int, account_sid: str | None,
                                   sids: Sequence[str]) -> None:
    await conn.execute(
        """INSERT INTO erased_messages (message_sid, erasure_id, firm_id, account_sid)
           SELECT s, $1, $2, $3 FROM unnest($4::text[]) AS s ON CONFLICT (message_sid) DO NOTHING""",
        erasure_id, firm_id, account_sid, list(sids),
    )


async def delete_person_rows(conn: asyncpg.Connection, firm_id: int, phones: Sequence[str], lead_ids: Sequence[int],
                             conversation_ids: Sequence[int], message_ids: Sequence[int], sids: Sequence[str],
                             *, events_too: bool = True) -> None:
    """Every row that names the person, but the ledgers (hashed, below): inbox rows (by
    the unique key's sid, or the message id), events, messages, conversations, signups,
    remembered phones, per-firm flags and their side tables."""
    phones, lead_ids, conv_ids, message_ids, sids = (list(phones), list(lead_ids), list(conversation_ids),
                                                     list(message_ids), list(sids))
    await conn.execute(
        """DELETE FROM twilio_inbox WHERE (kind IN ('status', 'inbound') AND message_sid = ANY($1::text[]))
                                       OR message_id = ANY($2::bigint[])""",
        sids, message_ids,
    )
    if events_too:  # (a firm's offboarding deletes all its events at the end instead)
        await conn.execute(
        """DELETE FROM events WHERE firm_id = $1 AND (
               data->>'phone' = ANY($2::text[])
            OR (type LIKE 'lead.%' AND (data->>'lead_id')::bigint = ANY($3::bigint[]))
            OR (type LIKE 'conversation.%' AND (data->>'conversation_id')::bigint = ANY($4::bigint[]))
            OR (type LIKE 'message.%' AND (data->>'id')::bigint = ANY($5::bigint[])))""",
        firm_id, phones, lead_ids, conv_ids, message_ids,
        )
    await conn.execute("DELETE FROM messages WHERE conversation_id = ANY($1::bigint[])", conv_ids)
    await conn.execute("DELETE FROM conversations WHERE id = ANY($1::bigint[])", conv_ids)
    await conn.execute("DELETE FROM leads WHERE firm_id = $1 AND id = ANY($2::bigint[])", firm_id, lead_ids)
    await conn.execute(
        "DELETE FROM lead_phones WHERE firm_id = $1 AND (lead_id = ANY($2::bigint[]) OR phone_e164 = ANY($3::text[]))",
        firm_id, lead_ids, phones,
    )
    for table in ("phone_flags", "optout_removals", "help_replies"):
        await conn.execute(f"DELETE FROM {table} WHERE firm_id = $1 AND phone_e164 = ANY($2::text[])", firm_id, phones)


async def suppress_opted_out(conn: asyncpg.Connection, firm_id: int, hashes: dict[str, str]) -> None:
    """A suppression row (hash, the opt-out's source) for each of these phones opted out."""
    await conn.execute(
        """INSERT INTO erased_suppressions (firm_id, phone_hash, source)
           SELECT $1, h.hash, f.opted_out_source
           FROM unnest($2::text[], $3::text[]) AS h(phone, hash)
           JOIN phone_flags f ON f.firm_id = $1 AND f.phone_e164 = h.phone AND f.opted_out
           ON CONFLICT (firm_id, phone_hash) DO UPDATE SET source = EXCLUDED.source""",
        firm_id, list(hashes), list(hashes.values()),
    )


async def hash_ledgers(conn: asyncpg.Connection, firm_id: int, hashes: dict[str, str]) -> None:
    """The consent ledger and the flag audit keep their rows with the phone replaced by
    its hash (the append-only trigger allows exactly this, inside an erasure)."""
    await conn.execute("SET LOCAL leadsms.erasure = 'on'")
    for table in ("consent_events", "phone_flag_events"):
        await conn.execute(
            f"""UPDATE {table} t SET phone_e164 = h.hash
                FROM unnest($2::text[], $3::text[]) AS h(phone, hash)
                WHERE t.firm_id = $1 AND t.phone_e164 = h.phone""",
            firm_id, list(hashes), list(hashes.values()),
        )
    await conn.execute("SET LOCAL leadsms.erasure = 'off'")


async def mark_erased(conn: Conn, erasure_id: int, hashes: Sequence[str], done: bool) -> None:
    await conn.execute(
        """UPDATE erasures SET phone_hashes = $2, erased_at = clock_timestamp(), subject_phone = NULL,
                  subject_lead = NULL, done_at = CASE WHEN $3 THEN clock_timestamp() END
           WHERE id = $1""",
        erasure_id, list(hashes), done,
    )


async def pending_deletions(conn: Conn, erasure_id: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT message_sid FROM erased_messages WHERE erasure_id = $1 AND deleted_at IS NULL ORDER BY message_sid",
        erasure_id,
    )
    return [r["message_sid"] for r in rows]


async def deletion(conn: Conn, sid: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT d.*, f.twilio_auth_token_enc, f.twilio_account_sid AS firm_account_sid
           FROM erased_messages d JOIN firms f ON f.id = d.firm_id WHERE d.message_sid = $1""",
        sid,
    )


async def count_attempt(conn: Conn, sid: str) -> None:
    await conn.execute("UPDATE erased_messages SET attempts = attempts + 1 WHERE message_sid = $1", sid)


async def mark_deleted(conn: asyncpg.Connection, sid: str) -> None:
    """The record is gone at Twilio; the erasure is done when its last one is. The
    erasure row is locked first, so of two last deletions finishing at once the later
    one's check (a new statement, a new snapshot) sees the earlier one's."""
    erasure_id = await conn.fetchval(
        """SELECT e.id FROM erasures e JOIN erased_messages d ON d.erasure_id = e.id
           WHERE d.message_sid = $1 FOR UPDATE OF e""", sid,
    )
    await conn.execute("UPDATE erased_messages SET deleted_at = clock_timestamp() WHERE message_sid = $1", sid)
    await conn.execute(
        """UPDATE erasures SET done_at = clock_timestamp()
           WHERE id = $1 AND done_at IS NULL AND erased_at IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM erased_messages WHERE erasure_id = $1 AND deleted_at IS NULL)""",
        erasure_id,
    )


async def unfinished_erasures(conn: Conn, older_than_s: float, limit: int) -> list[int]:
    rows = await conn.fetch(
        """SELECT id FROM erasures WHERE done_at IS NULL AND requested_at < now() - make_interval(secs => $1)
           ORDER BY requested_at LIMIT $2""",
        float(older_than_s), limit,
    )
    return [r["id"] for r in rows]


async def suppression_source(conn: Conn, firm_id: int, phone_hash: str) -> str | None:
    return await conn.fetchval(
        "SELECT source FROM erased_suppressions WHERE firm_id = $1 AND phone_hash = $2", firm_id, phone_hash,
    )


async def is_erased_sid(conn: Conn, sid: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM erased_messages WHERE message_sid = $1", sid))


# ---- a firm's offboarding ----------------------------------------------------------------

async def firm_phones(conn: Conn, firm_id: int, after: str, limit: int) -> list[str]:
    """The firm's phones (signups, remembered phones, conversations, flags, ledger) in
    order, a page after `after` (each source read by its (firm_id, phone) index, at most
    `limit` rows each): each is a person to erase."""
    branches = [
        ("leads", ""), ("lead_phones", ""), ("conversations", ""), ("phone_flags", ""),
        ("consent_events", "AND phone_e164 NOT LIKE 'erased:%'"),
    ]
    union = " UNION ".join(
        f"(SELECT DISTINCT phone_e164 AS p FROM {table} WHERE firm_id = $1 AND phone_e164 > $2 {extra} "
        f"ORDER BY 1 LIMIT $3)" for table, extra in branches)
    rows = await conn.fetch(f"SELECT p FROM ({union}) x ORDER BY p LIMIT $3", firm_id, after, limit)
    return [r["p"] for r in rows]


async def firm_leads_of_phones(conn: Conn, firm_id: int, phones: Sequence[str]) -> list[int]:
    rows = await conn.fetch(
        """SELECT id FROM leads WHERE firm_id = $1 AND phone_e164 = ANY($2::text[])
           UNION SELECT lead_id FROM lead_phones WHERE firm_id = $1 AND phone_e164 = ANY($2::text[])""",
        firm_id, list(phones),
    )
    return sorted(r["id"] for r in rows)


async def cancel_firm_unsent(conn: Conn, firm_id: int) -> int:
    result = await conn.execute(
        """UPDATE messages SET status = 'canceled', updated_at = clock_timestamp()
           WHERE firm_id = $1 AND status IN ('queued', 'scheduled')""",
        firm_id,
    )
    return int(result.split()[-1])


async def delete_firm_leftovers(conn: asyncpg.Connection, firm_id: int) -> None:
    """What no phone led to: signups without a phone, the firm's events, and (had any
    phone been missed) its remaining conversations and messages."""
    await conn.execute("DELETE FROM events WHERE firm_id = $1", firm_id)
    await conn.execute("DELETE FROM messages WHERE firm_id = $1", firm_id)
    await conn.execute("DELETE FROM conversations WHERE firm_id = $1", firm_id)
    await conn.execute("DELETE FROM leads WHERE firm_id = $1", firm_id)
    await conn.execute("DELETE FROM lead_phones WHERE firm_id = $1", firm_id)


async def tombstone_firm(conn: asyncpg.Connection, firm_id: int) -> None:
    """The firm row stays (the hashed ledger's firm) with no key, no number, no account."""
    await conn.execute(
        """UPDATE firms SET deleted_at = clock_timestamp(), name = 'deleted firm ' || id,
                  api_key_sha256 = NULL, previous_api_key_sha256 = NULL, previous_api_key_expires_at = NULL,
                  sms_number = NULL, messaging_service_sid = NULL, twilio_account_sid = NULL,
                  twilio_auth_token_enc = NULL, help_text = NULL
           WHERE id = $1""",
        firm_id,
    )
    await conn.execute(
        "UPDATE firm_numbers SET removed_at = clock_timestamp() WHERE firm_id = $1 AND removed_at IS NULL", firm_id,
    )


async def live_firm(conn: Conn, firm_id: int) -> bool:
    return bool(await conn.fetchval("SELECT true FROM firms WHERE id = $1 AND deleted_at IS NULL", firm_id))


async def suppression_sources(conn: Conn, firm_ids: Sequence[int], phone_hashes: Sequence[str]) -> list[asyncpg.Record]:
    """`suppression_source` for several (firm, hash) pairs: the pairs found, with their source."""
    return await conn.fetch(
        """SELECT s.firm_id, s.phone_hash, s.source FROM erased_suppressions s
           JOIN unnest($1::bigint[], $2::text[]) AS u(firm_id, phone_hash)
             ON s.firm_id = u.firm_id AND s.phone_hash = u.phone_hash""",
        list(firm_ids), list(phone_hashes),
    )
