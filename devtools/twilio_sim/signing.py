"""Webhooks as Twilio sends them: form-encoded, signed with X-Twilio-Signature.

The signature is computed by the twilio SDK's own `RequestValidator` (HMAC-SHA1 of the
full URL followed by the sorted POST parameters, keyed by the auth token), so what our
webhooks accept from the simulator is exactly what they would accept from Twilio.
Shared by the simulator's status callbacks, its inbound endpoint and the `inbound` CLI.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Mapping
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from shared.segments import count_segments
from devtools.twilio_sim.store import API_VERSION

SIGNATURE_HEADER = "X-Twilio-Signature"
INBOUND_PATH = "/twilio/inbound"
# Advanced Opt-Out's OptOutType values on an inbound text.
OPT_OUT_TYPES = ("STOP", "START", "HELP")


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


@lru_cache(maxsize=8)
def _validator(auth_token: str) -> RequestValidator:
    return RequestValidator(auth_token)


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    return _validator(auth_token).compute_signature(url, dict(params))


@dataclass(frozen=True)
class WebhookAnswer:
    status: int | None  # None when the request itself failed
    body: str
    error: str | None = None


async def post_signed(
    session: aiohttp.ClientSession, url: str, params: Mapping[str, str], auth_token: str,
    *, timeout: float = 15.0,
) -> WebhookAnswer:
    """POST `params` form-encoded and signed; never raises for network trouble.

    The body is encoded here once (not through aiohttp's FormData): callbacks are most of
    the simulator's work under a benchmark."""
    headers = {
        SIGNATURE_HEADER: sign(auth_token, url, params),
        "User-Agent": "TwilioProxy/1.1",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    try:
        async with session.post(url, data=urlencode(params).encode(), headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return WebhookAnswer(response.status, await response.text())
    except (aiohttp.ClientError, TimeoutError) as exc:
        return WebhookAnswer(None, "", f"{type(exc).__name__}: {exc}")


def inbound_params(*, account_sid: str, from_: str, to: str, body: str, sid: str | None = None,
                   opt_out_type: str | None = None, messaging_service_sid: str | None = None) -> dict[str, str]:
    """The fields Twilio posts for an incoming SMS: MessagingServiceSid when the number
    belongs to a Messaging Service; with Advanced Opt-Out on the sender, `OptOutType`
    (STOP, START or HELP) when the body is one of its keywords."""
    sid = sid or new_sid()
    params = {
        "ToCountry": "US",
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "US",
        "To": to,
        "ToZip": "",
        "NumSegments": str(count_segments(body)),
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    if opt_out_type:
        params["OptOutType"] = opt_out_type
    return params


def raw_dlr_done_date(moment: datetime) -> str:
    """Twilio's `RawDlrDoneDate`: the carrier's delivery-receipt time, YYMMDDhhmm."""
    return moment.strftime("%y%m%d%H%M")


def status_params(*, account_sid: str, sid: str, to: str, from_: str, status: str,
                  error_code: int | None = None, messaging_service_sid: str | None = None,
                  done_date: datetime | None = None) -> dict[str, str]:
    """The fields Twilio posts to a message's StatusCallback (MessagingServiceSid for a
    Messaging Service send; RawDlrDoneDate once the carrier reported delivered/undelivered)."""
    params = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": to,
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    if error_code is not None and status in ("failed", "undelivered"):
        params["ErrorCode"] = str(error_code)
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    if done_date is not None:
        params["RawDlrDoneDate"] = raw_dlr_done_date(done_date)
    return params


async def deliver_inbound(
    session: aiohttp.ClientSession, *, public_base_url: str, auth_token: str, account_sid: str,
    from_: str, to: str, body: str, opt_out_type: str | None = None, messaging_service_sid: str | None = None,
) -> tuple[str, dict[str, str], WebhookAnswer]:
    """Text us: a signed inbound POST to PUBLIC_BASE_URL/twilio/inbound. Returns (url, params, answer)."""
    url = public_base_url.rstrip("/") + INBOUND_PATH
    params = inbound_params(account_sid=account_sid, from_=from_, to=to, body=body, opt_out_type=opt_out_type,
                            messaging_service_sid=messaging_service_sid)
    return url, params, await post_signed(session, url, params, auth_token)
