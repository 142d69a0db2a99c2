"""Quiet hours: may a firm text this lead now? A pure function of (now, zone, window,
state, last inbound), so every rule is tested with an injected clock.

- The window is the firm's texting hours in the lead's local time, intersected with the
  stricter window of the lead's state (`state_windows.py`).
- A lead whose area code spans zones is texted only when the window is open in all of
  them (their overlap).
- A lead who texted the firm within the reply grace may be answered at any hour
  (`exempt`); a scheduled send never uses the grace.
- `closes_at` is when the open window (or an exempt reply's hour) ends: the Twilio
  ValidityPeriod is set from it, so a text still queued at Twilio then expires there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

from firms.zones import lead_place
from send_pipeline.state_windows import STATE_WINDOWS
from shared.config import parse_hours_window

DAY_MINUTES = 24 * 60
# Twilio's ceiling for ValidityPeriod, and what an exempt reply gets at most.
MAX_VALIDITY_S = 36_000
EXEMPT_VALIDITY_S = 3_600
ALWAYS = (0, DAY_MINUTES)


@dataclass(frozen=True)
class Window:
    start: int  # minutes after local midnight
    end: int    # up to 1440 (24:00)

    @classmethod
    def parse(cls, text: str) -> "Window":
        return cls(*parse_hours_window(text))

    @property
    def always(self) -> bool:
        return (self.start, self.end) == ALWAYS

    def narrowed_by(self, state: str | None) -> "Window":
        """This window intersected with the state's (the firm's own when none is stricter)."""
        law = STATE_WINDOWS.get((state or "").upper())
        if law is None:
            return self
        start, end = max(self.start, law[0]), min(self.end, law[1])
        return Window(start, end) if start < end else self

    def text(self) -> str:
        return f"{clock(self.start)}–{clock(self.end)}"


def clock(minutes: int) -> str:
    """'8:00 AM' for 480; 24:00 reads as '12:00 AM'."""
    h, m = divmod(minutes % DAY_MINUTES, 60)
    return f"{h % 12 or 12}:{m:02d} {'AM' if h < 12 else 'PM'}"


@dataclass(frozen=True)
class QuietDecision:
    allowed: bool
    exempt: bool                    # allowed only by the reply grace
    zone: str                       # the zone named to staff (the lead's first)
    local_now: datetime
    window: Window                  # the effective window (firm ∩ state)
    next_allowed_at: datetime | None  # when refused: the window's next opening
    closes_at: datetime | None        # when allowed: when the window (or exempt hour) ends

    @property
    def text(self) -> str:
        """design.md's sentence for a refusal (and the thread notice)."""
        when = self.next_allowed_at.astimezone(ZoneInfo(self.zone)) if self.next_allowed_at else None
        later = f"; you can schedule this message for {clock(when.hour * 60 + when.minute)}" if when else ""
        return (f"It's {clock(self.local_now.hour * 60 + self.local_now.minute)} for this lead ({self.zone}). "
                f"Texting hours are {self.window.text()}{later}.")

    def validity_period_s(self, now: datetime) -> int:
        """Twilio ValidityPeriod for a send now: until the window closes, at most 10 hours
        (an exempt reply: at most one hour), at least one second."""
        cap = EXEMPT_VALIDITY_S if self.exempt else MAX_VALIDITY_S
        if self.closes_at is None:
            return cap
        return max(1, min(cap, math.floor((self.closes_at - now).total_seconds())))


def _intervals(zone: ZoneInfo, window: Window, around: date, days: int) -> list[tuple[datetime, datetime]]:
    """The window's open spans in UTC for local dates around `around`, adjacent ones merged."""
    spans: list[tuple[datetime, datetime]] = []
    for offset in range(-1, days):
        d = around + timedelta(days=offset)
        start = _local(zone, d, window.start)
        end = _local(zone, d, window.end)
        if spans and spans[-1][1] >= start:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        elif start < end:
            spans.append((start, end))
    return spans


def _local(zone: ZoneInfo, d: date, minutes: int) -> datetime:
    day, minutes = divmod(minutes, DAY_MINUTES)
    local = datetime.combine(d + timedelta(days=day), time(minutes // 60, minutes % 60), tzinfo=zone)
    # A wall time skipped by a spring-forward gap does not exist: take the instant after it.
    back = local.astimezone(timezone.utc).astimezone(zone)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):
        local = back
    return local.astimezone(timezone.utc)


def _intersect(a: list[tuple[datetime, datetime]], b: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def decide(now: datetime, zones: Sequence[str], window: Window, state: str | None,
           last_inbound_at: datetime | None, grace: timedelta | None) -> QuietDecision:
    """May the firm text the lead at `now` (aware)? `grace` None: no reply exemption
    (scheduled sends)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zones = tuple(zones) or ("UTC",)
    effective = window.narrowed_by(state)
    infos = [ZoneInfo(z) for z in zones]
    local_now = now.astimezone(infos[0])
    if effective.always:
        return QuietDecision(True, False, zones[0], local_now, effective, None, None)

    spans: list[tuple[datetime, datetime]] | None = None
    for info in infos:
        mine = _intervals(info, effective, now.astimezone(info).date(), days=4)
        spans = mine if spans is None else _intersect(spans, mine)
    if not spans:  # zones too far apart for the window to overlap: the first zone decides
        spans = _intervals(infos[0], effective, local_now.date(), days=4)

    now_utc = now.astimezone(timezone.utc)
    for start, end in spans:
        if start <= now_utc < end:
            return QuietDecision(True, False, zones[0], local_now, effective, None, end)
    next_open = next((start for start, _ in spans if start > now_utc), None)
    if grace is not None and last_inbound_at is not None and now - grace <= last_inbound_at <= now + timedelta(minutes=1):
        return QuietDecision(True, True, zones[0], local_now, effective, None,
                             now + timedelta(seconds=EXEMPT_VALIDITY_S))
    return QuietDecision(False, False, zones[0], local_now, effective, next_open, None)


def decide_for(row: Mapping[str, Any], now: datetime, *, grace: timedelta | None) -> QuietDecision:
    """`decide` for a row carrying `queries.QUIET_CONTEXT`: where the lead is (design.md's
    order: signup timezone, US ZIP, area code, the firm's zone) and the firm's window."""
    place = lead_place(row["lead_timezone"], row["lead_postal_code"], row["lead_phone"],
                       row["firm_timezone"], row["firm_number"])
    return decide(now, place.zones, Window.parse(row["quiet_hours"]), place.state, row["last_inbound_at"], grace)


def refusal_fields(decision: QuietDecision) -> dict[str, Any]:
    """The 409 `quiet_hours` answer's extra fields (and the thread notice)."""
    return {
        "next_allowed_at": decision.next_allowed_at.isoformat() if decision.next_allowed_at else None,
        "timezone": decision.zone,
        "notice": {"level": "info", "code": "quiet_hours", "text": decision.text},
    }
