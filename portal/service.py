"""The portal's read API as plain functions of (deps, firm id, ...): picker, list, thread open.

All reads are scoped to the caller's firm; a conversation of another firm is `NotFound`,
never a 403 (a firm cannot even learn that an id exists).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog

from lookup import service as lookup_service
from portal import picker, queries
from conversations import queries as conversation_queries
from conversations.shapes import conversation_json
from portal.shapes import decode_cursor, encode_cursor, lead_item
from send_pipeline.service import quiet_notice
from shared.deps import Deps
from shared.errors import NotFound

log = structlog.get_logger(__name__)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


async def sendable_leads(deps: Deps, firm_id: int, raw_q: str | None) -> list[dict[str, Any]]:
    """The picker (docs/portal-api.md): up to 20 sendable phones matching `q`, each as its
    newest signup.

    Raises `picker.BadQuery` for a q that cannot be searched (too long, NUL).
    """
    query = picker.normalize_query(raw_q)
    if query is None:
        return []
    async with deps.pool.acquire() as conn:
        rows = await _pick(conn, firm_id, query)
    return [lead_item(row) for row in rows]


async def _pick(conn: asyncpg.Connection, firm_id: int, query: picker.PickerQuery) -> list[asyncpg.Record]:
    if query.mode == "digits":
        region = await queries.firm_region(conn, firm_id) or "US"
        national = picker.country_code(region) + query.needle
        return await queries.pick_by_digits(conn, firm_id, query.needle, national, query.pattern)
    return await queries.pick_by_text(conn, firm_id, query.needle, query.pattern, indexed=query.indexed)


async def list_conversations(deps: Deps, firm_id: int, limit: int = DEFAULT_LIMIT,
                             before: str | None = None, q: str | None = None) -> dict[str, Any]:
    """One page of the firm's conversations, most recent activity first.

    `before` is the `next` cursor of the previous page (`shapes.BadCursor` if it is not).
    `q` searches by the lead's name or the phone (`picker.list_search`: under 2
    characters, no filter; `picker.BadQuery` for one that cannot be searched); `next`
    then pages through the matches. `next` is None on the last page: one extra row is
    fetched to know.
    """
    name_pattern, digits_pattern = picker.list_search(q)
    patterns = {"name_pattern": name_pattern, "digits_pattern": digits_pattern}
    if before:
        activity, conv_id = decode_cursor(before)
        rows = await conversation_queries.list_conversations_before(deps.pool, firm_id, limit + 1, activity, conv_id,
                                                                    **patterns)
    else:
        rows = await conversation_queries.list_conversations(deps.pool, firm_id, limit + 1, **patterns)
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return {
        "items": [conversation_json(row) for row in page],
        "next": encode_cursor(last["activity"], last["id"]) if more and last is not None else None,
    }


async def open_conversation(deps: Deps, firm_id: int, conv_id: int) -> dict[str, Any]:
    """Thread open: the conversation with its sendable decision, after a lazy lookup.

    An imported lead was never looked up; the first open asks Lookup (waiting at most
    LAZY_LOOKUP_WAIT_MS) so a landline shows its warning before anyone types. The answer
    is cached in phone_lines, so later opens cost nothing.
    """
    structlog.contextvars.bind_contextvars(conversation_id=conv_id)
    row = await conversation_queries.fetch_conversation(deps.pool, firm_id, conv_id)
    if row is None:
        raise NotFound("No such conversation.")
    if _needs_line_type(row) and not await queries.line_is_known(deps.pool, row["phone_e164"]):
        await _lazy_line_type(deps, row["phone_e164"])
        # re-read: the answer may have made the phone a landline, or invalid everywhere
        row = await conversation_queries.fetch_conversation(deps.pool, firm_id, conv_id) or row
    quiet = await quiet_notice(deps, deps.pool, firm_id, conv_id) if row["block_code"] is None else None
    return conversation_json(row, quiet_notice=quiet)


def _needs_line_type(row: asyncpg.Record) -> bool:
    """Only a valid phone's decision depends on the line type (missing/pending/invalid come first)."""
    return row["line_type"] is None and (row["phone_status"] or "valid") == "valid"


async def _lazy_line_type(deps: Deps, phone_e164: str) -> None:
    """lookup's bounded inline lookup, which caches its answer in phone_lines. A failure
    leaves the line type unknown (sendable; a send to a landline is then refused by
    Twilio with 21614, which records it)."""
    try:
        await lookup_service.lazy_line_type(deps, phone_e164)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # thread open must not fail because Lookup did
        log.warning("thread_open_lookup_failed", error=type(exc).__name__)
