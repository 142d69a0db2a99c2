"""The scenario table: what the simulator does, chosen by the destination's last 4 digits.

One table, so the demo, the tests and docs/twilio-simulator.md all mean the same thing by
"a 01xx number". Per-number state ("first two tries") lives in the store, not here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CreateError:
    """A refusal of Messages create: HTTP status, Twilio code, message template."""

    status: int
    code: int
    message: str  # may contain {to}


@dataclass(frozen=True)
class Scenario:
    name: str
    line_type: str | None  # Lookup line_type_intelligence.type; None when invalid
    valid: bool = True
    create_error: CreateError | None = None  # always refused with this
    fail_first_tries: int = 0  # answer 500 without creating, this many tries per number
    rate_limit_first_tries: int = 0  # answer 429 (20429), this many tries per number
    created_but_500_tries: int = 0  # create the message yet answer 500, this many tries
    late: bool = False  # Lookup and create answer late_delay_s late
    outcome: str = "delivered"  # final status callback
    outcome_error: int | None = None  # ErrorCode on that callback


ERROR_500 = CreateError(500, 20500, "An internal server error has occurred")
ERROR_429 = CreateError(429, 20429, "Too Many Requests")

DEFAULT = Scenario("default", "mobile")

# (first, last, scenario) by the last four digits, as in issue 3 and the docs.
TABLE: tuple[tuple[int, int, Scenario], ...] = (
    (1, 99, Scenario("landline", "landline",
                     create_error=CreateError(400, 21614, "'To' number {to} is not a valid mobile number"))),
    (100, 199, Scenario("filtered", "mobile", outcome="undelivered", outcome_error=30007)),
    (200, 299, Scenario("unreachable", "mobile", outcome="undelivered", outcome_error=30003)),
    (300, 399, Scenario("unsubscribed", "mobile",
                        create_error=CreateError(400, 21610, "Attempt to send to unsubscribed recipient"))),
    (400, 499, Scenario("invalid", None, valid=False,
                        create_error=CreateError(400, 21211, "The 'To' number {to} is not a valid phone number."))),
    (500, 599, Scenario("server_error_twice", "mobile", fail_first_tries=2)),
    (600, 699, Scenario("rate_limited_once", "mobile", rate_limit_first_tries=1)),
    (700, 799, Scenario("late", "mobile", late=True)),
    (800, 899, Scenario("voip", "nonFixedVoip")),
    (900, 999, Scenario("created_but_500_once", "mobile", created_but_500_tries=1)),
    (1190, 1199, Scenario("failed", "mobile", outcome="failed", outcome_error=30001)),
)

CARRIERS = {
    "mobile": "Sim Mobile Wireless",
    "landline": "Sim Telephone Landline",
    "nonFixedVoip": "Sim Voice VoIP",
}


def last_four(number: str) -> int | None:
    digits = "".join(ch for ch in number if ch.isdigit())
    return int(digits[-4:]) if len(digits) >= 4 else None


def scenario_for(number: str) -> Scenario:
    """The scenario for a destination number (anything unmatched is `DEFAULT`)."""
    tail = last_four(number)
    if tail is None:
        return DEFAULT
    for first, last, scenario in TABLE:
        if first <= tail <= last:
            return scenario
    return DEFAULT
