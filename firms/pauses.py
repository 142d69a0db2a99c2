"""Sending paused by an account-level Twilio error: not the message's fault, so the
messages stay `queued` instead of failing one by one.

- Sender errors (21606/21659: a From the account does not own or cannot send SMS from;
  30032/30034: an unregistered sender) pause that firm until `leadsms firm resume`: a
  person has to fix the number or its registration.
- 20003 (authentication) pauses the Twilio account the request used: the main account
  (every firm without a subaccount) or one firm's subaccount. The sweeper probes each
  paused account (a Messages list, PageSize=1) and lifts the pause once Twilio accepts
  its credentials again.

Each pause logs one CRITICAL line; `leadsms_sending_paused` and /ops show what is paused
and why.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from firms import queries
from firms.credentials import CredentialsUnavailable, decrypt_token
from shared.deps import Deps
from shared.twilio import TwilioError

log = structlog.get_logger(__name__)

AUTHENTICATION = 20003
SENDER_ERRORS = frozenset({21606, 21659, 30032, 30034})
ACCOUNT_ERRORS = SENDER_ERRORS | {AUTHENTICATION}


def is_account_error(code: int | None) -> bool:
    return code in ACCOUNT_ERRORS


async def pause_for_error(conn: asyncpg.Connection, firm_id: int, account_sid: str, code: int, detail: str) -> str:
    """Pause what the error is about, in the caller's transaction; returns the scope
    (`firm` or `account`)."""
    reason = f"Twilio error {code}: {detail}"[:500]
    if code == AUTHENTICATION:
        if await queries.pause_account(conn, account_sid, code, reason):
            log.critical("twilio_account_paused", twilio_account_sid=account_sid, code=code, reason=reason,
                         firm_id=firm_id)
        return "account"
    if await queries.pause_firm(conn, firm_id, code, reason):
        log.critical("firm_sending_paused", firm_id=firm_id, code=code, reason=reason)
    return "firm"


async def probe_paused_accounts(deps: Deps) -> dict[str, int] | int:
    """Sweep task: ask Twilio, with each paused account's credentials, for one message;
    lift the pause of every account it answers."""
    rows = await queries.paused_accounts(deps.pool)
    if not rows or deps.twilio is None:
        return 0
    counts = {"resumed": 0, "still_paused": 0}
    for row in rows:
        sid = row["account_sid"]
        try:
            client = _client_for(deps, sid, row["token_enc"])
            await client.probe()
        except (TwilioError, CredentialsUnavailable) as exc:
            await queries.mark_probed(deps.pool, sid)
            counts["still_paused"] += 1
            log.warning("twilio_account_probe_failed", twilio_account_sid=sid,
                        code=getattr(exc, "code", None), status=getattr(exc, "status", None))
            continue
        if await queries.resume_account(deps.pool, sid):
            counts["resumed"] += 1
            log.warning("twilio_account_resumed", twilio_account_sid=sid, paused_since=row["paused_at"].isoformat())
    return {k: v for k, v in counts.items() if v}


def _client_for(deps: Deps, account_sid: str, token_enc: str | None) -> Any:
    assert deps.twilio is not None
    if account_sid == deps.twilio.account_sid or token_enc is None:
        return deps.twilio
    return deps.twilio.for_account(account_sid, decrypt_token(deps.settings.credentials_key, token_enc))


def twilio_for_firm(deps: Deps, account_sid: str | None, token_enc: str | None) -> Any:
    """The Twilio client a firm sends with: its subaccount's, else the main account's."""
    assert deps.twilio is not None
    if account_sid is None:
        return deps.twilio
    return _client_for(deps, account_sid, token_enc)


SWEEPS: dict = {"probe_paused_accounts": probe_paused_accounts}
