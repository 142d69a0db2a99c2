"""What a delivery attempt's result means: pure, so the rules are tested without a clock.

- 2xx: delivered.
- 410 Gone: the endpoint is disabled (PATCH re-enables it); the delivery stays pending.
- anything else fails the attempt: the next one comes after the schedule's next delay
  (`WEBHOOK_RETRY_SCHEDULE_S`, ±10 % jitter), never before a `Retry-After`; after the
  last delay the delivery is `failed`.
- 429, 502, 504, timeouts and connection failures also slow the whole endpoint down:
  none of its deliveries is tried before `Retry-After`, or a delay doubling per slow
  answer in a row (1 s up to 5 min).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

SLOWING_STATUSES = frozenset({429, 502, 504})
SLOWING_OUTCOMES = frozenset({"timeout", "connect_error"})
MAX_RETRY_AFTER_S = 86400.0
SLOW_MAX_S = 300.0
JITTER = 0.1


@dataclass(frozen=True)
class Decision:
    status: str  # delivered | pending | failed
    next_in_s: float | None  # when pending: seconds to the next attempt
    slow: bool  # slow the endpoint down
    retry_after_s: float | None
    disable: str | None  # a reason to disable the endpoint


def decide(outcome: str, status_code: int | None, attempts: int, schedule: Sequence[int],
           retry_after_s: float | None, *, rng: random.Random | None = None) -> Decision:
    if outcome == "delivered":
        return Decision("delivered", None, False, None, None)
    retry_after = None if retry_after_s is None else min(retry_after_s, MAX_RETRY_AFTER_S)
    if status_code == 410:
        return Decision("pending", 0.0, False, None, "gone")
    slow = status_code in SLOWING_STATUSES or outcome in SLOWING_OUTCOMES
    if attempts > len(schedule):
        return Decision("failed", None, slow, retry_after, None)
    delay = schedule[attempts - 1] * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return Decision("pending", delay, slow, retry_after, None)

