"""The picker item and the conversation list cursor: pure, no I/O.

The cursor is opaque to clients but deliberately simple: the last item's activity time
(microseconds since the epoch, PostgreSQL's own precision, so the keyset comparison is
exact) and its id, base64url-encoded. Anything else a client sends as `before` is a 400.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any, Mapping

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_CURSOR_RE = re.compile(r"^(-?\d{1,19})\.(\d{1,19})$")
_MAX_ID = 2**63 - 1


class BadCursor(ValueError):
    """`before` is not a cursor this API handed out."""


def lead_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A picker item: the newest signup of a sendable phone."""
    return {
        "lead_id": row["lead_id"],
        "name": row["name"],
        "email": row["email"],
        "phone": row["phone"],
        "event": row["event"],
        "signed_up_at": row["signed_up_at"],
    }


def encode_cursor(activity: dt.datetime, conv_id: int) -> str:
    delta = activity - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return base64.urlsafe_b64encode(f"{micros}.{conv_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    """(activity, id) of a cursor from `encode_cursor`; `BadCursor` for anything else."""
    if not cursor or len(cursor) > 64:
        raise BadCursor(cursor)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise BadCursor(cursor) from None
    match = _CURSOR_RE.match(raw)
    if not match:
        raise BadCursor(cursor)
    micros, conv_id = int(match[1]), int(match[2])
    if conv_id > _MAX_ID:
        raise BadCursor(cursor)
    try:
        return _EPOCH + dt.timedelta(microseconds=micros), conv_id
    except OverflowError:
        raise BadCursor(cursor) from None
