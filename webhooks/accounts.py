"""Which Twilio account signed a webhook, and whether that account may speak for it.

A firm may send with its own Twilio subaccount, and Twilio signs that account's
webhooks with that account's auth token. So a request is checked with the token of the
account its `AccountSid` names (the main account's primary or secondary token, or a
firm's decrypted subaccount token), and is then refused (403) unless that account is
the one of the firm the request is about: the firm of the message a status callback
names, or the firm that owns the number an inbound text went to. A callback signed by
one firm's account can therefore never touch another firm's message, even when it names
a real message id. For status callbacks the owner is looked up in their batch, one query
for the whole batch (webhooks/batcher.py); the rule is `signer_owns`, for both.

Tokens are looked up per request through a short in-process cache (decrypted tokens are
kept in memory only, never logged).
"""

from __future__ import annotations

import asyncio
import time
from typing import Mapping

import asyncpg
import structlog
from aiohttp import web

from firms import queries as firm_queries
from firms.credentials import CredentialsUnavailable, decrypt_token
from shared.deps import Deps
from shared.errors import HttpError
from webhooks import inbox

log = structlog.get_logger(__name__)

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


async def check_inbound_account(deps: Deps, params: Mapping[str, str]) -> bool:
    """403 unless the signing account is the account of the firm that owns the number the
    text went to; False when no firm of ours has that number. (Status callbacks are
    checked in their batch: webhooks/batcher.py, one query for the whole batch.)"""
    try:
        async with deps.pool.acquire(timeout=inbox.ACQUIRE_TIMEOUT_S) as conn:  # 503 rather than a hang
            firm = await firm_queries.firm_for_number(conn, (params.get("To") or "").strip(),
                                                      params.get("MessagingServiceSid"))
    except DB_DOWN as exc:
        raise _unavailable() from exc
    return signer_owns(deps.settings.twilio_account_sid, params, firm is not None,
                       None if firm is None else firm["twilio_account_sid"])


def signer_owns(main_account_sid: str, params: Mapping[str, str], ours: bool, owner_account_sid: str | None) -> bool:
    """The rule, given what the webhook names: False when it names nothing of ours (stored,
    then left unmatched/unrouted); True when the signing account (its AccountSid, the main
    account when absent) is the owner's (None: the main account); else 403."""
    if not ours:
        return False
    signer = (params.get("AccountSid") or "").strip() or main_account_sid
    if (owner_account_sid or main_account_sid) != signer:
        log.warning("webhook_account_mismatch", twilio_account_sid=signer, message_sid=params.get("MessageSid"))
        raise HttpError(403, "account_mismatch", "This webhook's Twilio account is not the account of the firm it names.")
    return True
