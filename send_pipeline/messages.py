"""Pure helpers of the send path: what a valid body is, its digest, retry backoff.

No I/O here, so the rules can be read (and tested) on their own.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Mapping

from shared.errors import HttpError

MAX_BODY_CHARS = 1600
# How far ahead a send may be scheduled (design.md).
SEND_AT_MIN_AHEAD = timedelta(seconds=10)
SEND_AT_MAX_AHEAD = timedelta(days=30)
SEND_AT_HINT = "an RFC 3339 date-time with an offset (like 2026-05-01T08:00:00-07:00), 10 seconds to 30 days ahead"

def clean_body(data: Mapping[str, Any]) -> str:
    """The message text of a send request: trimmed, 1–1600 characters, valid text.

    Raises a 400 `HttpError` saying what is wrong. A NUL or a lone surrogate (which JSON's
    `\\ud800` escapes can produce) is refused here rather than failing in the database.
    """
    if "body" not in data:
        raise HttpError(400, "missing_body", "Send the message text as \"body\".")
    body = data["body"]
    if not isinstance(body, str):
        raise HttpError(400, "invalid_body", "\"body\" must be a string.")
    body = body.strip()
    if not body:
        raise HttpError(400, "empty_body", "The message is empty.")
    if len(body) > MAX_BODY_CHARS:
        raise HttpError(400, "body_too_long",
                        f"The message is {len(body)} characters long; the limit is {MAX_BODY_CHARS}.")
    if "\x00" in body:
        raise HttpError(400, "invalid_body", "The message contains a NUL character.")
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, "invalid_body", "The message is not valid text (it contains a lone surrogate).") from None
    return body


def parse_send_at(data: Mapping[str, Any], now: datetime) -> datetime | None:
    """The send request's `send_at`: None when absent; 400 `invalid_send_at` unless it is
    RFC 3339 with an offset and 10 s to 30 days after `now`."""
    raw = data.get("send_at")
    if raw is None:
        return None
    if not isinstance(raw, str) or "T" not in raw.upper() or len(raw) > 64:
        raise HttpError(400, "invalid_send_at", f"send_at must be {SEND_AT_HINT}.")
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise HttpError(400, "invalid_send_at", f"send_at must be {SEND_AT_HINT}.") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise HttpError(400, "invalid_send_at", f"send_at has no offset: send {SEND_AT_HINT}.")
    ahead = when - now
    if ahead < SEND_AT_MIN_AHEAD:
        raise HttpError(400, "invalid_send_at", "send_at must be at least 10 seconds from now.")
    if ahead > SEND_AT_MAX_AHEAD:
        raise HttpError(400, "invalid_send_at", "send_at must be at most 30 days from now.")
    return when


def parse_cancel_on_reply(data: Mapping[str, Any]) -> bool:
    value = data.get("cancel_on_reply", False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise HttpError(400, "invalid_cancel_on_reply", "cancel_on_reply must be true or false.")
    return value


def body_digest(body: str) -> str:
    """A short fixed-size fingerprint of a body, for the duplicate-window key."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def backoff_ms(attempts: int, min_ms: int, max_ms: int) -> int:
    """Delay before the next try after `attempts` tries Twilio never received.

    Exponential from `min_ms` (1st retry), doubling per attempt, capped at `max_ms`.
    """
    exponent = max(0, attempts - 1)
    if exponent >= 40:  # 2**40 ms is already past any sane cap
        return max_ms
    return min(max_ms, min_ms * (2 ** exponent))
