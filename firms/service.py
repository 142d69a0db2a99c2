"""Firms: creating one with its number and first API key."""

from __future__ import annotations

from typing import Any

from firms import queries
from firms.auth import hash_api_key, new_api_key
from shared.db import connect
from shared.errors import AppError
from shared.phones import normalize_firm_number


async def add_firm(dsn: str, name: str, number: str, region: str = "US") -> dict[str, Any]:
    """Create a firm; returns its id, name, number and API key (shown this once)."""
    number = normalize_firm_number(number)
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise AppError("--name must be 1 to 200 characters", code="bad_name")
    key = new_api_key()
    conn = await connect(dsn)
    try:
        exists = await queries.firm_with_number(conn, number)
        if exists:
            raise AppError(f"a firm already uses {number} (firm {exists})", code="number_taken")
        firm_id = await queries.insert_firm(conn, name, number, region.upper(), hash_api_key(key))
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
