"""Staff opt-outs, their removal, the firm's opt-out list and a phone's consent history.

Staff record an opt-out for a lead who asked on the phone (`staff:<user>`, the reason
kept in the ledger's `detail`). They may remove only an opt-out whose latest source is
`staff:` or `list:` (a click or a list that was wrong); one the lead asked for (a keyword,
21610) is refused with 409 `lead_opt_out`: only the lead lifts it, by texting START.
A removal is remembered, so a re-import of a list does not put the phone back.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from consent import ledger, queries
from firms.queries import firm_by_id
from shared.deps import Deps
from shared.errors import HttpError
from shared.phones import E164_RE, check_phone

log = structlog.get_logger(__name__)

LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 1000
MAX_REASON = 500


def invalid_phone(raw: str) -> HttpError:
    return HttpError(400, "invalid_phone", f"{raw[:40]!r} is not a phone number in E.164 form (+ and digits).")


def e164_path_phone(raw: str) -> str:
    """A path's phone: exactly E.164 (`+` or `%2B`, decoded by the router), else 400."""
    raw = raw.strip()
    if not E164_RE.match(raw):
        raise invalid_phone(raw)
    return raw


async def _firm_region(conn: Any, firm_id: int) -> str:
    firm = await firm_by_id(conn, firm_id)
    return firm["default_region"] if firm else "US"


def opt_out_json(phone: str, source: str | None, at: Any) -> dict[str, Any]:
    return {"phone": phone, "source": source, "at": at}


async def staff_opt_out(deps: Deps, firm_id: int, raw_phone: str, user: str,
                        reason: str | None) -> tuple[dict[str, Any], bool]:
    """Record staff's opt-out; (the opt-out, True when it is new)."""
    async with deps.pool.acquire() as conn:
        checked = check_phone(raw_phone, await _firm_region(conn, firm_id))
        if checked.status != "valid":
            raise invalid_phone(raw_phone)
        phone = checked.e164
        async with conn.transaction():
            created = await ledger.opt_out(conn, firm_id, phone, f"{ledger.STAFF_PREFIX}{user}", detail=reason)
            if created:
                await queries.forget_removals(conn, firm_id, [phone])
            source = await queries.opted_out_source(conn, firm_id, phone)
    log.info("staff_opt_out", created=created, user=user)
    return {"phone": phone, "opted_out": True, "source": source}, created


async def remove_opt_out(deps: Deps, firm_id: int, phone: str, user: str) -> None:
    """Lift a `staff:`/`list:` opt-out (404 when not opted out, 409 for the lead's own)."""
    async with deps.pool.acquire() as conn:
        async with conn.transaction():
            state = await queries.lock_opt_out(conn, firm_id, phone)
            if state is None or not state["opted_out"]:
                raise HttpError(404, "not_opted_out", "This phone is not opted out.")
            source = state["opted_out_source"]
            if not ledger.staff_may_lift(source):
                raise HttpError(
                    409, "lead_opt_out",
                    "The lead opted out themselves, so staff cannot lift it: "
                    "only the lead can opt back in, by texting START.",
                    source=source,
                )
            await ledger.opt_in(conn, firm_id, phone, f"{ledger.STAFF_PREFIX}{user}", detail=f"removed {source}")
            await queries.record_removal(conn, firm_id, phone, source, user)
    log.info("staff_opt_out_removed", removed_source=source, user=user)


async def opt_out_page(deps: Deps, firm_id: int, after: str | None, limit: int) -> dict[str, Any]:
    rows = await queries.opt_out_page(deps.pool, firm_id, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [opt_out_json(r["phone_e164"], r["source"], r["at"]) for r in rows],
        "next": rows[-1]["phone_e164"] if more and rows else None,
    }


def consent_event_json(row: asyncpg.Record) -> dict[str, Any]:
    """One ledger row for an audit: kind, source, the inbound MessageSid or the staff
    user, the raw keyword text or staff's reason (`detail`), the time."""
    source: str = row["source"]
    return {
        "phone": row["phone_e164"],
        "kind": row["kind"],
        "source": source,
        "message_sid": row["message_sid"],
        "user": source[len(ledger.STAFF_PREFIX):] if source.startswith(ledger.STAFF_PREFIX) else None,
        "detail": row["detail"],
        "at": row["at"],
    }


CONSENT_CSV_COLUMNS = ("phone", "kind", "source", "message_sid", "user", "detail", "at")


async def consent_history(deps: Deps, firm_id: int, phone: str) -> list[dict[str, Any]]:
    return [consent_event_json(r) for r in await queries.consent_history(deps.pool, firm_id, phone)]
