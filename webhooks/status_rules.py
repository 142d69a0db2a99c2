"""What a batch of status callbacks does, decided in memory from the locked rows.

`apply_status_batch` (status_batch.py) locks a batch's inbox rows, their messages and the
phone flags they touch, asks this module what one-by-one application would have done, and
writes the answer back with a handful of set-based statements. Deciding here, in one
place with no I/O, is what keeps a batch equal to one-by-one application:

- The rows are applied in **message creation order** (created_at, id), and the callbacks
  of one message in arrival order (received_at, inbox id). So consecutive carrier-filter
  failures of a phone are counted in the order its messages were sent, whatever order the
  callbacks arrive in, and a replayed or late callback of one message sees the state the
  earlier ones left.
- Each rule is the per-callback rule: a status only moves forward (status_codes.RANK),
  `blocked` stays, Twilio's word is the one of the latest callback received, the first
  error code of a move is kept, a callback that names another sid than the stored one is
  `sid_mismatch`, one for no message of ours is `unmatched` (or `erased`).
- Filter failures count up per (firm, phone), `delivered` resets the count, and the count
  reaching BLOCK_AFTER_FILTER_FAILURES blocks the phone once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from webhooks.status_codes import FINAL_FAILURES, advances, describe_error, effect_of, our_status, parse_error_code

Pair = tuple[int, str]  # (firm_id, phone_e164)


@dataclass
class Callback:
    """One unprocessed `twilio_inbox` row of kind `status`."""

    inbox_id: int
    sid: str
    twilio_status: str
    message_id: int | None  # the callback URL's ?m=
    params: Mapping[str, str]
    received_at: datetime

    @property
    def arrival(self) -> tuple[datetime, int]:
        return (self.received_at, self.inbox_id)


@dataclass
class MessageState:
    """A locked outbound message as the batch changes it."""

    id: int
    firm_id: int
    conversation_id: int
    phone_e164: str
    direction: str
    status: str
    twilio_status: str | None
    twilio_sid: str | None
    error_code: int | None
    error_message: str | None
    from_number: str | None
    created_at: datetime
    touched: bool = False  # a callback was applied: the row is written back
    event: bool = False  # a `message.status` event is due
    moved: bool = False  # its status moved: its conversation's event too

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "MessageState":
        return cls(**{k: row[k] for k in (
            "id", "firm_id", "conversation_id", "phone_e164", "direction", "status", "twilio_status",
            "twilio_sid", "error_code", "error_message", "from_number", "created_at")})


@dataclass(frozen=True)
class Effect:
    """A status move with consequences for the (firm, phone): `delivered` or a final failure."""

    message: MessageState
    status: str
    error_code: int | None
    sid: str

    @property
    def pair(self) -> Pair:
        return (self.message.firm_id, self.message.phone_e164)


@dataclass
class StatusPlan:
    outcomes: dict[int, str] = field(default_factory=dict)  # inbox id -> outcome, as one-by-one records it
    erased: list[int] = field(default_factory=list)  # inbox rows to delete (their message's person was erased)
    effects: list[Effect] = field(default_factory=list)  # in application order
    messages: list[MessageState] = field(default_factory=list)  # touched, in id order


def find_message(cb: Callback, by_id: Mapping[int, MessageState], by_sid: Mapping[str, MessageState]) -> MessageState | None:
    """Our message for a callback: by `?m=` (present before the sid is stored), else by sid;
    an inbound message is none of a status callback's business."""
    message = by_id.get(cb.message_id) if cb.message_id is not None else None
    if message is None:
        message = by_sid.get(cb.sid)
    if message is not None and message.direction != "out":
        return None
    return message


def plan_statuses(callbacks: Iterable[Callback], messages: Iterable[MessageState], erased_sids: set[str],
                  last_applied: Mapping[str, tuple[datetime, int]]) -> StatusPlan:
    """Apply the callbacks to the messages (in memory, in the order one-by-one application
    would see them: see the module docstring). `messages` holds every message the batch
    names by id or by sid; `last_applied` the newest (received_at, id) of a processed row
    per sid before this batch."""
    by_id = {m.id: m for m in messages}
    by_sid = {m.twilio_sid: m for m in by_id.values() if m.twilio_sid is not None}
    found = [(cb, find_message(cb, by_id, by_sid)) for cb in callbacks]
    # Rows for no message first (they change nothing but the newest-applied mark of their
    # sid), then every message's callbacks in its creation order.
    found.sort(key=lambda f: (0, f[0].arrival) if f[1] is None
               else (1, f[1].created_at, f[1].id, f[0].arrival))
    plan = StatusPlan()
    newest = dict(last_applied)
    for cb, message in found:
        if message is None:
            if cb.sid in erased_sids:  # stored while its erasure committed
                plan.erased.append(cb.inbox_id)
                plan.outcomes[cb.inbox_id] = "erased"
            else:
                plan.outcomes[cb.inbox_id] = "unmatched"
        else:
            plan.outcomes[cb.inbox_id] = _apply_one(cb, message, by_sid, newest, plan)
        if cb.inbox_id not in plan.erased and (cb.sid not in newest or newest[cb.sid] < cb.arrival):
            newest[cb.sid] = cb.arrival
    plan.messages = sorted((m for m in by_id.values() if m.touched), key=lambda m: m.id)
    return plan


def _apply_one(cb: Callback, message: MessageState, by_sid: dict[str, MessageState],
               newest: Mapping[str, tuple[datetime, int]], plan: StatusPlan) -> str:
    if message.twilio_sid is not None and message.twilio_sid != cb.sid:
        # ?m= names a message Twilio knows under another sid: applying it would overwrite
        # the first one's facts.
        return "sid_mismatch"
    if message.twilio_sid is None and by_sid.get(cb.sid, message) is not message:
        return "sid_mismatch"  # the sid belongs to another message of ours
    new = our_status(cb.twilio_status)
    moved = message.status != "blocked" and advances(message.status, new)
    status = new if moved else message.status
    latest = cb.sid not in newest or not newest[cb.sid] > cb.arrival
    error_code = parse_error_code(cb.params.get("ErrorCode"))
    error_message = (cb.params.get("ErrorMessage") or "").strip()[:500] or describe_error(error_code)
    message.status = status
    if latest and cb.twilio_status:
        message.twilio_status = cb.twilio_status
    if message.twilio_sid is None:
        message.twilio_sid = cb.sid
        by_sid[cb.sid] = message
    if error_code is not None and (moved or message.error_code is None):
        message.error_code, message.error_message = error_code, error_message
    # A Messaging Service send learns its sender from the first callback that names it.
    if message.from_number is None:
        message.from_number = (cb.params.get("From") or "").strip() or None
    message.touched = True
    if moved or latest:
        message.event = True
        message.moved = message.moved or moved
    if not moved:
        return "recorded"
    if status == "delivered" or status in FINAL_FAILURES:
        plan.effects.append(Effect(message, status, error_code, cb.sid))
    return f"status:{status}"


# ---- the (firm, phone) side: filter-failure counts and auto-blocks -----------------------


@dataclass
class FlagState:
    consecutive_filter_failures: int = 0
    blocked: bool = False
    changed: bool = False
    blocked_now: str | None = None  # the reason, when this batch blocked it


@dataclass(frozen=True)
class FlagEvent:
    firm_id: int
    phone_e164: str
    kind: str
    reason: str | None
    actor: str | None
    message_id: int


def filter_failure_pairs(effects: Iterable[Effect]) -> list[Pair]:
    """The (firm, phone) pairs the batch counts a filter failure for, in lock order."""
    return sorted({e.pair for e in effects if effect_of(e.error_code, e.status).filter_failure})


def plan_flags(effects: Iterable[Effect], flags: dict[Pair, FlagState], threshold: int) -> list[FlagEvent]:
    """Count failures and resets in the effects' order on `flags` (the locked rows; a pair
    absent has no row, and none is needed for a reset); the audit rows, in order."""
    out: list[FlagEvent] = []
    for e in effects:
        firm_id, phone = e.pair
        if e.status == "delivered":
            f = flags.get(e.pair)
            if f is not None and f.consecutive_filter_failures > 0:
                out.append(FlagEvent(firm_id, phone, "filter_reset",
                                     f"delivered after {f.consecutive_filter_failures} failure(s)", None, e.message.id))
                f.consecutive_filter_failures, f.changed = 0, True
            continue
        if not effect_of(e.error_code, e.status).filter_failure:
            continue
        f = flags.setdefault(e.pair, FlagState())
        f.consecutive_filter_failures += 1
        f.changed = True
        count = f.consecutive_filter_failures
        out.append(FlagEvent(firm_id, phone, "filter_failure", f"error {e.error_code} ({count} in a row)", None,
                             e.message.id))
        if count >= threshold and not f.blocked:
            reason = f"carrier_filtered: {count} consecutive failures, last error {e.error_code}"
            f.blocked, f.blocked_now = True, reason
            out.append(FlagEvent(firm_id, phone, "blocked", reason, "auto", e.message.id))
    return out
