"""Twilio's message statuses and error codes, and what each means for us.

Two tables, both meant to be retuned here and nowhere else (Twilio warns that carriers'
codes change over time):

- `OUR_STATUS`: Twilio's status word -> ours (docs/send-pipeline.md's states), and `RANK`, which
  orders ours so a callback only ever moves a message forward.
- `ERROR_EFFECTS`: error code -> what it does to the (firm, phone): count a consecutive
  carrier-filter failure (auto-block at BLOCK_AFTER_FILTER_FAILURES), refresh the line
  type, mark the phone invalid, or opt it out.
"""

from __future__ import annotations

from dataclasses import dataclass

# Twilio's MessageStatus -> ours. Anything else (an unknown word) changes no status.
OUR_STATUS: dict[str, str] = {
    "queued": "sent", "accepted": "sent", "scheduled": "sent", "sending": "sent", "sent": "sent",
    "delivered": "delivered", "read": "delivered",
    "undelivered": "undelivered", "partially_delivered": "undelivered",
    "failed": "failed", "canceled": "failed",
    "received": "received", "receiving": "received",
}

# Forward-only order of our outbound statuses; `blocked` and `canceled` are final (never sent).
RANK: dict[str, int] = {"scheduled": -1, "queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}
FINAL_FAILURES = frozenset({"undelivered", "failed"})


def our_status(twilio_status: str) -> str | None:
    return OUR_STATUS.get((twilio_status or "").strip().lower())


def advances(current: str, new: str | None) -> bool:
    """True when `new` moves a message in `current` forward (the states' rank, docs/send-pipeline.md)."""
    if new is None or current not in RANK or new not in RANK:
        return False
    return RANK[new] > RANK[current]


@dataclass(frozen=True)
class ErrorEffect:
    """What one Twilio error code does to the (firm, phone) of the message."""

    filter_failure: bool = False  # one more consecutive carrier-filter failure
    refresh_line_type: bool = False  # ask Lookup again (force)
    invalid_reason: str | None = None  # mark the phone invalid with this reason
    opt_out: bool = False  # the handset opted out at the carrier (consent event twilio_21610)


NO_EFFECT = ErrorEffect()

ERROR_EFFECTS: dict[int, ErrorEffect] = {
    30003: ErrorEffect(filter_failure=True),  # unreachable handset
    30004: ErrorEffect(filter_failure=True),  # message blocked
    30006: ErrorEffect(filter_failure=True, refresh_line_type=True),  # landline or unreachable carrier
    30007: ErrorEffect(filter_failure=True),  # carrier filtered
    30008: ErrorEffect(filter_failure=True),  # unknown error
    30005: ErrorEffect(invalid_reason="twilio_30005"),  # number does not exist
    21211: ErrorEffect(invalid_reason="twilio_21211"),
    21610: ErrorEffect(opt_out=True),  # the handset replied STOP at the carrier
}

OPT_OUT_SOURCE = "twilio_21610"

# Twilio's words for the codes above, stored when a callback carries no ErrorMessage.
ERROR_TEXTS: dict[int, str] = {
    21211: "Invalid 'To' phone number",
    21610: "Attempt to send to unsubscribed recipient",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}


def describe_error(error_code: int | None) -> str | None:
    return ERROR_TEXTS.get(error_code) if error_code is not None else None


def effect_of(error_code: int | None, status: str) -> ErrorEffect:
    """The effect of `error_code` arriving with our `status`; NO_EFFECT when none applies.

    Effects apply only on a final failure (undelivered / failed): an error code on an
    interim status is informational.
    """
    if error_code is None or status not in FINAL_FAILURES:
        return NO_EFFECT
    return ERROR_EFFECTS.get(error_code, NO_EFFECT)


def parse_error_code(raw: str | None) -> int | None:
    """Twilio's ErrorCode field as an int; None when absent, empty or not a number."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 9:
        return None
    return int(raw)
