"""Firms: creating one with its number and first API key."""

from __future__ import annotations

from typing import Any

from firms import queries
from firms.auth import hash_api_key, new_api_key
from firms.zones import firm_zone, is_timezone
from shared.config import format_hours_window, parse_hours_window
from shared.db import connect
from shared.errors import AppError
from shared.phones import normalize_firm_number


# Texting hours that never close: what tests, the demo and the bench give their firms, so
# no run depends on the time of day it starts.
ALWAYS_OPEN = "00:00-24:00"


def _clean_hours(quiet_hours: str) -> str:
    try:
        return format_hours_window(*parse_hours_window(quiet_hours))
    except ValueError as exc:
        raise AppError(f"--quiet-hours {exc}", code="bad_quiet_hours") from None


async def add_firm(dsn: str, name: str, number: str, region: str = "US",
                   quiet_hours: str | None = None) -> dict[str, Any]:
    """Create a firm; returns its id, name, number and API key (shown this once).

    `quiet_hours` is its texting window (QUIET_HOURS when the CLI creates it); its zone
    starts as its number's area code's."""
    number = normalize_firm_number(number)
    hours = _clean_hours(quiet_hours) if quiet_hours is not None else None
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise AppError("--name must be 1 to 200 characters", code="bad_name")
    key = new_api_key()
    conn = await connect(dsn)
    try:
        exists = await queries.firm_with_number(conn, number)
        if exists:
            raise AppError(f"a firm already uses {number} (firm {exists})", code="number_taken")
        firm_id = await queries.insert_firm(conn, name, number, region.upper(), hash_api_key(key), hours)
    finally:
        await conn.close()
    return {"firm_id": firm_id, "name": name, "sms_number": number, "api_key": key}


MAX_HELP_TEXT = 1600


async def set_firm(dsn: str, firm_id: int, *, help_text: str | None = None) -> dict[str, Any]:
    """Change the options given (None: left as it is); returns what the firm has now.

    `help_text` "" restores the default HELP reply."""
    if help_text is not None and len(help_text.strip()) > MAX_HELP_TEXT:
        raise AppError(f"--help-text must be at most {MAX_HELP_TEXT} characters", code="bad_help_text")
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            firm = await queries.firm_by_id(conn, firm_id)
            if firm is None:
                raise AppError(f"no firm with id {firm_id}", code="no_firm")
            if help_text is not None:
                await queries.set_help_text(conn, firm_id, help_text.strip() or None)
            firm = await queries.firm_by_id(conn, firm_id)
    finally:
        await conn.close()
    return {"firm_id": firm_id, "name": firm["name"], "help_text": firm["help_text"]}


async def set_firm_hours(dsn: str, firm_id: int, *, timezone: str | None = None,
                         quiet_hours: str | None = None) -> dict[str, Any]:
    """`leadsms firm hours`: set the firm's zone and/or texting hours (neither: show them).

    `timezone` "" or "auto" goes back to the zone of the firm number's area code."""
    set_timezone = timezone is not None
    if timezone is not None:
        timezone = timezone.strip()
        if timezone.lower() in ("", "auto"):
            timezone = None
        elif not is_timezone(timezone):
            raise AppError(f"--timezone {timezone!r} is not an IANA time zone (like America/Chicago)",
                           code="bad_timezone")
    hours = _clean_hours(quiet_hours) if quiet_hours is not None else None
    conn = await connect(dsn)
    try:
        row = await queries.set_hours(conn, firm_id, timezone, set_timezone, hours)
    finally:
        await conn.close()
    if row is None:
        raise AppError(f"no firm {firm_id}", code="unknown_firm")
    return {
        "firm_id": row["id"],
        "timezone": firm_zone(row["timezone"], row["sms_number"]),
        "timezone_from": "firm" if row["timezone"] else "number",
        "quiet_hours": row["quiet_hours"],
    }
