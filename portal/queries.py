"""SQL of the portal's read API: the lead picker and the conversation list / thread open.

Every query takes the caller's firm id and filters on it: another firm's ids find nothing.

The picker runs in three steps inside one statement:

1. candidate signups (`hits`), each source capped: prefix matches through the per-firm
   btree indexes (`leads_firm_*_prefix`); substring matches among the firm's newest
   signups (`leads_firm_recent`, index-only), and only when those are few, through the
   trigram indexes (see `_PICK`). The caps keep a common fragment ("an", "son") from
   dragging thousands of rows through the later steps; the price is that such a fragment
   offers the newest matches rather than the best of all, and a phone whose only match
   lies past the caps is not offered until the query is narrowed.
2. one row per matching phone (best rank of its hits), joined to that phone's newest
   signup (`leads_firm_phone_newest`), ordered best match first, newest first.
3. the sendable filter, `send_block_code(...)`, evaluated once per phone, lazily in that
   order until 20 rows pass (`OFFSET 0` keeps PostgreSQL from pushing the filter below
   the sort, which would evaluate it for every candidate).
"""

from __future__ import annotations

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

PICKER_LIMIT = 20
PREFIX_CAP = 40  # rows per prefix tier
SUBSTRING_CAP = 60  # rows of substring matches (from the window, then the index)
RECENT_WINDOW = 2_000  # newest signups scanned first for substring matches
SHORT_WINDOW = 10_000  # ... and only these, for a q too short for a trigram
INDEX_GATE = 30  # fewer substring matches than this among the newest: ask the trigram index

# chr(1114111) is U+10FFFF, the largest code point: [p, p || U+10FFFF) is every string
# that starts with p in byte order (text_pattern_ops), so a prefix is an index range.
_TEXT_PREFIX = """
    (SELECT phone_e164, 1 AS rank FROM leads
     WHERE firm_id = $1 AND phone_e164 IS NOT NULL
       AND lower(name) ~>=~ lower($2) AND lower(name) ~<~ (lower($2) || chr(1114111))
     LIMIT $4)
    UNION ALL
    (SELECT phone_e164, 1 FROM leads
     WHERE firm_id = $1 AND phone_e164 IS NOT NULL
       AND lower(email) ~>=~ lower($2) AND lower(email) ~<~ (lower($2) || chr(1114111))
     LIMIT $4)
"""
_TEXT_MATCH = "(lower(name) LIKE lower($3) OR lower(email) LIKE lower($3))"
# a name, email or word of the name that starts with q ("smi" in "John Smith") ranks as a prefix
_TEXT_RANK = """CASE WHEN starts_with(lower(name), lower($2)) OR starts_with(lower(email), lower($2))
                     OR position(' ' || lower($2) IN lower(name)) > 0 THEN 1 ELSE 2 END"""

# digits mode: $2 = digits typed, $3 = country code || digits typed (a national number)
_DIGITS_PREFIX = """
    (SELECT phone_e164, CASE WHEN substr(phone_e164, 2) IN ($2, $3) THEN 0 ELSE 1 END AS rank FROM leads
     WHERE firm_id = $1 AND phone_e164 IS NOT NULL
       AND substr(phone_e164, 2) ~>=~ $2 AND substr(phone_e164, 2) ~<~ ($2 || chr(1114111))
     LIMIT $4)
    UNION ALL
    (SELECT phone_e164, CASE WHEN substr(phone_e164, 2) IN ($2, $3) THEN 0 ELSE 1 END FROM leads
     WHERE firm_id = $1 AND phone_e164 IS NOT NULL
       AND substr(phone_e164, 2) ~>=~ $3 AND substr(phone_e164, 2) ~<~ ($3 || chr(1114111))
     LIMIT $4)
"""
_DIGITS_MATCH = "substr(phone_e164, 2) LIKE $9"
_DIGITS_RANK = """CASE WHEN substr(phone_e164, 2) IN ($2, $3) THEN 0
                       WHEN starts_with(substr(phone_e164, 2), $2) OR starts_with(substr(phone_e164, 2), $3) THEN 1
                       ELSE 2 END"""

# Substring matches come from two places. First the firm's newest $6 signups
# (leads_firm_recent): a common fragment fills its cap there, at once and newest first.
# Only when that finds fewer than $8 matches (a rare fragment) is the trigram index asked,
# through a MATERIALIZED CTE: planned for full retrieval (so PostgreSQL picks the trigram
# index rather than a LIMIT-driven sequential scan on a guessed selectivity), evaluated
# lazily (it stops once $5 rows are read), and not run at all when the gate is shut ($7
# false, or the window had enough): the gate is a one-time filter. `firm_id + 0` keeps the
# firm filter off the btree indexes there: a plan that ANDs the trigram bitmap with a bitmap
# of every row of the firm (a generic plan guesses a third of the table) costs 100+ ms.
_PICK = """
WITH recent_hits AS MATERIALIZED (
    SELECT phone_e164, {rank} AS rank FROM (
        SELECT phone_e164, name, email FROM leads
        WHERE firm_id = $1
        ORDER BY signed_up_at DESC, id DESC
        LIMIT $6) AS recent
    WHERE phone_e164 IS NOT NULL AND {match}
    LIMIT $5
),
indexed_hits AS MATERIALIZED (
    SELECT phone_e164, {rank} AS rank FROM leads
    WHERE firm_id = $1 AND phone_e164 IS NOT NULL AND {match}
),
hits AS (
    {prefix}
    UNION ALL
    SELECT phone_e164, rank FROM recent_hits
    UNION ALL
    (SELECT phone_e164, rank FROM indexed_hits
     WHERE $7 AND (SELECT count(*) FROM recent_hits) < $8
     LIMIT $5)
),
phones AS (
    SELECT phone_e164, min(rank) AS rank FROM hits GROUP BY phone_e164
),
ordered AS (
    SELECT newest.*, phones.rank FROM phones
    CROSS JOIN LATERAL (
        SELECT id, name, email, event, phone_e164, phone_status, signed_up_at FROM leads
        WHERE leads.firm_id = $1 AND leads.phone_e164 = phones.phone_e164
        ORDER BY leads.signed_up_at DESC, leads.id DESC
        LIMIT 1) AS newest
    ORDER BY phones.rank, newest.signed_up_at DESC, newest.id DESC
    OFFSET 0
)
SELECT id AS lead_id, name, email, phone_e164 AS phone, event, signed_up_at, rank
FROM ordered
WHERE send_block_code($1, phone_status, phone_e164) IS NULL
LIMIT {limit}
"""

PICK_TEXT_SQL = _PICK.format(prefix=_TEXT_PREFIX, match=_TEXT_MATCH, rank=_TEXT_RANK, limit=PICKER_LIMIT)
PICK_DIGITS_SQL = _PICK.format(prefix=_DIGITS_PREFIX, match=_DIGITS_MATCH, rank=_DIGITS_RANK, limit=PICKER_LIMIT)


async def _fetch_custom_plan(conn: asyncpg.Connection, sql: str, *args: object) -> list[asyncpg.Record]:
    """Run the picker with a plan made for these very values.

    asyncpg prepares statements once per connection, and PostgreSQL may then switch to a
    generic plan, made without knowing the firm. Such a plan guesses the firm holds a
    fraction of the table and ANDs the trigram bitmap with a bitmap of the firm's rows:
    for a firm of a million leads that alone costs 100+ ms. A custom plan knows the
    firm's size (and the pattern's); planning it costs about a millisecond.
    """
    async with conn.transaction(readonly=True):
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        return await conn.fetch(sql, *args)


async def pick_by_text(conn: asyncpg.Connection, firm_id: int, needle: str, pattern: str, *,
                       indexed: bool) -> list[asyncpg.Record]:
    """Sendable leads whose name or email (of any signup) contains `needle`.

    `indexed` False (no trigram in q): substring matches among the newest SHORT_WINDOW
    signups only, so a 2-character q never scans the whole firm.
    """
    window = RECENT_WINDOW if indexed else SHORT_WINDOW
    return await _fetch_custom_plan(conn, PICK_TEXT_SQL, firm_id, needle, pattern, PREFIX_CAP, SUBSTRING_CAP,
                                    window, indexed, INDEX_GATE)


async def pick_by_digits(conn: asyncpg.Connection, firm_id: int, digits: str, national: str,
                         pattern: str) -> list[asyncpg.Record]:
    """Sendable leads whose phone digits contain `digits` (`national`: with the country code)."""
    return await _fetch_custom_plan(conn, PICK_DIGITS_SQL, firm_id, digits, national, PREFIX_CAP, SUBSTRING_CAP,
                                    RECENT_WINDOW, True, INDEX_GATE, pattern)


async def firm_region(conn: Conn, firm_id: int) -> str | None:
    return await conn.fetchval("SELECT default_region FROM firms WHERE id = $1", firm_id)


async def line_is_known(conn: Conn, phone_e164: str) -> bool:
    """Whether Lookup has ever answered for this phone (thread open looks it up lazily if not)."""
    return bool(await conn.fetchval("SELECT true FROM phone_lines WHERE phone_e164 = $1", phone_e164))
