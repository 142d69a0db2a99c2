"""Firms: creating one, its numbers (with history), its Twilio identity (a Messaging
Service, a subaccount), API key rotation, and resuming a paused firm.

The CLI calls these with a DSN (one short connection each); every change is one
transaction, so a refused change leaves nothing half-written.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import structlog

from firms import queries
from firms.auth import hash_api_key, new_api_key
from firms.zones import firm_zone, is_timezone
from shared.config import format_hours_window, parse_hours_window
from firms.credentials import encrypt_token
from shared.db import connect
from shared.errors import AppError
from shared.phones import normalize_firm_number

log = structlog.get_logger(__name__)

MESSAGING_SERVICE_RE = re.compile(r"^MG[0-9a-fA-F]{32}$")
ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-fA-F]{32}$")
GRACE_RE = re.compile(r"^(\d+)([smhd])$")
GRACE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_GRACE_S = 30 * 86400


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
        async with conn.transaction():
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


async def _locked_firm(conn: asyncpg.Connection, firm_id: int) -> asyncpg.Record:
    firm = await queries.lock_firm(conn, firm_id)
    if firm is None:
        raise AppError(f"no firm {firm_id}", code="no_firm")
    return firm


async def _summary(conn: asyncpg.Connection, firm_id: int) -> dict[str, Any]:
    firm = await queries.lock_firm(conn, firm_id)
    assert firm is not None
    return {
        "firm_id": firm_id,
        "default_number": firm["sms_number"],
        "numbers": await queries.current_numbers(conn, firm_id),
        "messaging_service_sid": firm["messaging_service_sid"],
        "twilio_account_sid": firm["twilio_account_sid"],  # the SID only: never the token
        "paused": firm["paused_at"] is not None,
    }


async def change_number(dsn: str, firm_id: int, action: str, raw_number: str) -> dict[str, Any]:
    """`number add|remove|default`. A number another firm owns now cannot be added; the
    default cannot be removed (make another number the default first)."""
    number = normalize_firm_number(raw_number)
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            firm = await _locked_firm(conn, firm_id)
            current = await queries.current_numbers(conn, firm_id)
            if action == "add":
                owner = await queries.firm_with_number(conn, number)
                if owner is not None:
                    raise AppError(f"{number} belongs to firm {owner} now: remove it there first", code="number_taken")
                await queries.add_number(conn, firm_id, number)
            elif action == "remove":
                if number not in current:
                    raise AppError(f"{number} is not a current number of firm {firm_id}", code="no_such_number")
                if number == firm["sms_number"]:
                    raise AppError(f"{number} is the default number: make another number the default first",
                                   code="default_number")
                await queries.remove_number(conn, firm_id, number)
            elif action == "default":
                if number not in current:
                    raise AppError(f"{number} is not a current number of firm {firm_id}: add it first",
                                   code="no_such_number")
                await queries.set_default_number(conn, firm_id, number)
            else:
                raise AppError(f"unknown number action {action!r}", code="bad_action")
            summary = await _summary(conn, firm_id)
    finally:
        await conn.close()
    log.info("firm_number_changed", firm_id=firm_id, action=action, number=number)
    return summary


async def set_identity(dsn: str, firm_id: int, *, credentials_key: str | None,
                       messaging_service: str | None = None, account_sid: str | None = None,
                       auth_token: str | None = None) -> dict[str, Any]:
    """`firm set`: each option given changes that part only. `--messaging-service none`
    (or `--account-sid none`) goes back to the numbers (or the main account)."""
    if messaging_service is not None and messaging_service.lower() != "none" \
            and not MESSAGING_SERVICE_RE.match(messaging_service):
        raise AppError("--messaging-service must be a Messaging Service SID (MG + 32 hex digits) or none",
                       code="bad_messaging_service")
    token_enc: str | None = None
    if account_sid is not None and account_sid.lower() != "none":
        if not ACCOUNT_SID_RE.match(account_sid):
            raise AppError("--account-sid must be an account SID (AC + 32 hex digits) or none", code="bad_account_sid")
        if not auth_token:
            raise AppError("--account-sid needs --auth-token-stdin (the token, on standard input)", code="no_token")
        token_enc = encrypt_token(credentials_key, auth_token)
    elif auth_token is not None:
        raise AppError("--auth-token-stdin goes with --account-sid", code="no_account_sid")
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            await _locked_firm(conn, firm_id)
            if messaging_service is not None:
                sid = None if messaging_service.lower() == "none" else messaging_service
                try:
                    await queries.set_messaging_service(conn, firm_id, sid)
                except asyncpg.UniqueViolationError:
                    raise AppError(f"another firm uses {sid}", code="messaging_service_taken") from None
            if account_sid is not None:
                sid = None if account_sid.lower() == "none" else account_sid
                await queries.set_subaccount(conn, firm_id, sid, token_enc if sid else None)
            summary = await _summary(conn, firm_id)
    finally:
        await conn.close()
    log.info("firm_identity_set", firm_id=firm_id, messaging_service=summary["messaging_service_sid"],
             twilio_account_sid=summary["twilio_account_sid"])
    return summary


def parse_grace(raw: str) -> float:
    """`24h`, `90m`, `30s`, `7d` or `0` → seconds (at most 30 days)."""
    raw = raw.strip().lower()
    if raw == "0":
        return 0.0
    match = GRACE_RE.match(raw)
    if not match:
        raise AppError("--grace must look like 24h, 90m, 30s or 7d (or 0)", code="bad_grace")
    seconds = int(match.group(1)) * GRACE_UNITS[match.group(2)]
    if seconds > MAX_GRACE_S:
        raise AppError("--grace must be at most 30d", code="bad_grace")
    return float(seconds)


async def rotate_key(dsn: str, firm_id: int, grace_s: float) -> dict[str, Any]:
    """A new API key (shown this once); the old one keeps working for `grace_s`. A second
    rotation inside the grace drops the oldest key."""
    key = new_api_key()
    conn = await connect(dsn)
    try:
        until = await queries.rotate_key(conn, firm_id, hash_api_key(key), grace_s)
    finally:
        await conn.close()
    if until is None:
        raise AppError(f"no firm {firm_id}", code="no_firm")
    log.info("firm_api_key_rotated", firm_id=firm_id, grace_s=grace_s)
    return {"firm_id": firm_id, "api_key": key, "previous_key_valid_until": until.isoformat()}


async def resume(dsn: str, firm_id: int) -> dict[str, Any]:
    """Lift a firm's pause (sender errors); its queued messages go out on the sweeper's next pass."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            await _locked_firm(conn, firm_id)
            resumed = await queries.resume_firm(conn, firm_id)
    finally:
        await conn.close()
    log.info("firm_resumed" if resumed else "firm_not_paused", firm_id=firm_id)
    return {"firm_id": firm_id, "resumed": resumed}
