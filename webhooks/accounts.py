"""Which Twilio account signed a webhook, and whether that account may speak for it.

A firm may send with its own Twilio subaccount, and Twilio signs that account's
webhooks with that account's auth token. So a request is checked with the token of the
account its `AccountSid` names (the main account's primary or secondary token, or a
firm's decrypted subaccount token), and is then refused (403) unless that account is
the one of the firm the request is about: the firm of the message a status callback
names, or the firm that owns the number an inbound text went to. A callback signed by
one firm's account can therefore never touch another firm's message, even when it names
a real message id.

Tokens are looked up per request through a short in-process cache (decrypted tokens are
kept in memory only, never logged).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Mapping

import asyncpg
from aiohttp import web

from firms import queries as firm_queries
from firms.credentials import CredentialsUnavailable, decrypt_token
from shared.deps import Deps
from shared.errors import HttpError
from webhooks import inbox

TOKEN_CACHE = web.AppKey("webhook_token_cache", dict)
TOKEN_CACHE_TTL_S = 30.0
DB_DOWN = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def _unavailable() -> HttpError:
    """Not checked, so not answered 2xx: Twilio retries later."""
    return HttpError(503, "unavailable", "The database is unavailable. Try again shortly.", headers={"Retry-After": "1"})


async def tokens_for_account(app: web.Application, deps: Deps, account_sid: str | None,
                             *, fresh: bool = False) -> list[str]:
    """The tokens that may sign a webhook naming `account_sid` (none for an unknown account);
    `fresh` skips the cache (a token set with `leadsms firm set` a moment ago)."""
    settings = deps.settings
    if not account_sid or account_sid == settings.twilio_account_sid:
        return [t for t in (settings.twilio_auth_token, settings.twilio_auth_token_secondary) if t]
    cache: dict[str, tuple[list[str], float]] = app[TOKEN_CACHE]
    now = time.monotonic()
    hit = None if fresh else cache.get(account_sid)
    if hit is not None and hit[1] > now:
        return hit[0]
    try:
        encrypted = await firm_queries.subaccount_token(deps.pool, account_sid)
    except DB_DOWN as exc:
        raise _unavailable() from exc
    tokens: list[str] = []
    if encrypted is not None:
        try:
            tokens = [decrypt_token(settings.credentials_key, encrypted)]
        except CredentialsUnavailable:
            tokens = []
    if len(cache) > 10_000:
        cache.clear()
    cache[account_sid] = (tokens, now + TOKEN_CACHE_TTL_S)
    return tokens


async def check_account_owns(deps: Deps, kind: str, params: Mapping[str, str], message_id: int | None) -> bool:
    """403 unless the signing account is the account of the firm this webhook is about;
    False when the webhook names nothing of ours (no such message, no such number)."""
    main = deps.settings.twilio_account_sid
    signer = (params.get("AccountSid") or "").strip() or main
    try:
        async with deps.pool.acquire(timeout=inbox.ACQUIRE_TIMEOUT_S) as conn:  # 503 rather than a hang
            owner = await _owning_account(conn, kind, params, message_id)
    except DB_DOWN as exc:
        raise _unavailable() from exc
    if owner is _UNKNOWN:
        return False  # nothing of ours is named: stored and then left unmatched/unrouted
    if (owner or main) != signer:
        raise HttpError(403, "account_mismatch", "This webhook's Twilio account is not the account of the firm it names.")
    return True


_UNKNOWN: Any = object()


async def _owning_account(conn: asyncpg.Connection, kind: str, params: Mapping[str, str],
                          message_id: int | None) -> Any:
    if kind == "status":
        row = None
        if message_id is not None:
            row = await conn.fetchrow(
                "SELECT f.twilio_account_sid FROM messages m JOIN firms f ON f.id = m.firm_id WHERE m.id = $1",
                message_id)
        sid = (params.get("MessageSid") or "").strip()
        if row is None and sid:
            row = await conn.fetchrow(
                "SELECT f.twilio_account_sid FROM messages m JOIN firms f ON f.id = m.firm_id WHERE m.twilio_sid = $1",
                sid)
        return _UNKNOWN if row is None else row["twilio_account_sid"]
    firm = await firm_queries.firm_for_number(conn, (params.get("To") or "").strip(), params.get("MessagingServiceSid"))
    return _UNKNOWN if firm is None else firm["twilio_account_sid"]
