"""The thread's page cursor: where a reader stopped, and what the feed had numbered then.

A thread lists oldest first by `(created_at, id)`, and an inbound row keeps Twilio's
received time as `created_at`: a reply filed after a later send sorts *before* it. A cursor
of the last message alone would skip such a reply when it is filed after the page was read.
So the cursor also carries the firm's event number (the change feed's cursor) as of the
read: the next page first returns the thread's messages whose `message.created` /
`message.received` event is numbered after it but that sort at or before the last message
(the late ones, in feed order), then the messages after the last one. Event numbers are
given at commit in the order readers can see them, so nothing filed after a read is missed.

Written `<message id>.<event number>`; clients treat it as opaque.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import HttpError

MAX_PART_DIGITS = 19


@dataclass(frozen=True)
class ThreadCursor:
    last_id: int  # the last message of the previous page in thread order
    seen_seq: int  # the firm's event number up to which late messages were returned

    def __str__(self) -> str:
        return f"{self.last_id}.{self.seen_seq}"


def _digits(raw: str) -> int | None:
    if not raw or len(raw) > MAX_PART_DIGITS or not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if value <= 2**63 - 1 else None


def parse_thread_cursor(raw: str | None) -> ThreadCursor | None:
    """The cursor a page's `next` gave out; None when absent; 400 when malformed."""
    if raw is None or raw.strip() == "":
        return None
    last, dot, seen = raw.strip().partition(".")
    last_id, seen_seq = _digits(last), _digits(seen)
    if not dot or last_id is None or seen_seq is None or last_id == 0:
        raise HttpError(400, "invalid_cursor", "after must be the \"next\" cursor of a previous page.")
    return ThreadCursor(last_id, seen_seq)
