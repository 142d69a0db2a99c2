"""What the simulator received and did, in memory.

Everything is an append to a list or a dict update, so a request costs O(1) here however
long a benchmark runs; messages are also indexed by (To, From) so the Messages list
endpoint (what the sweeper asks after an ambiguous send) never scans everything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"

# Shown at 0 before anything happened, so a reader never has to guess a missing key.
COUNTERS = (
    "messages_created", "create_attempts", "create_refused", "lookups", "lookup_requests", "list_requests",
    "status_posts", "status_posts_failed", "inbound_posts", "auth_failures", "messages_deleted",
)


def now() -> datetime:
    return datetime.now(timezone.utc)


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's REST date format: "Thu, 24 Aug 2023 05:01:45 +0000"."""
    return format_datetime(moment) if moment is not None else None


@dataclass(slots=True)
class SimMessage:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    num_segments: int
    encoding: str
    scenario: str
    date_created: datetime
    status: str = "queued"
    date_updated: datetime | None = None
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    statuses: list[str] = field(default_factory=list)
    validity_period: int | None = None  # seconds, as the request's ValidityPeriod said
    messaging_service_sid: str | None = None
    from_shown: bool = True  # False until a Messaging Service's chosen sender is revealed

    def set_status(self, status: str, error_code: int | None = None) -> None:
        self.status = status
        self.statuses.append(status)
        self.date_updated = now()
        if status == "sent":
            self.date_sent = self.date_updated
        if error_code is not None:
            self.error_code = error_code

    def to_twilio(self) -> dict[str, Any]:
        """Twilio's Message resource JSON."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated or self.date_created),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_ if self.from_shown else None,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }

    def inspect(self) -> dict[str, Any]:
        """The simulator's own view: Twilio's fields plus what only the simulator knows."""
        shown = self.to_twilio()
        shown.update(status_callback=self.status_callback, encoding=self.encoding,
                     scenario=self.scenario, statuses=list(self.statuses),
                     validity_period=self.validity_period)
        return shown


class Store:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.messages: list[SimMessage] = []
        self.by_sid: dict[str, SimMessage] = {}
        self.by_pair: dict[tuple[str, str], list[SimMessage]] = {}
        self.attempts: list[dict[str, Any]] = []
        self.lookups: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self._tries: dict[str, int] = {}
        self.sticky: dict[tuple[str, str], str] = {}  # (Messaging Service, To) -> its sender

    def next_try(self, to: str) -> int:
        """1 for the first create attempt to `to`, 2 for the second... (per-number state)."""
        n = self._tries.get(to, 0) + 1
        self._tries[to] = n
        return n

    def add_message(self, message: SimMessage) -> None:
        self.messages.append(message)
        self.by_sid[message.sid] = message
        self.by_pair.setdefault((message.to, message.from_), []).append(message)
        self.counters["messages_created"] += 1

    def add_attempt(self, **attempt: Any) -> None:
        attempt["at"] = now().isoformat()
        self.attempts.append(attempt)
        self.counters["create_attempts"] += 1
        if attempt.get("outcome") == "refused":
            self.counters["create_refused"] += 1

    def add_lookup(self, **lookup: Any) -> None:
        lookup["at"] = now().isoformat()
        self.lookups.append(lookup)
        self.counters["lookups"] += 1

    def add_callback(self, record: dict[str, Any]) -> None:
        self.callbacks.append(record)
        self.counters[f"{record['kind']}_posts"] += 1

    def delete(self, message: SimMessage) -> None:
        self.messages.remove(message)
        self.by_sid.pop(message.sid, None)
        pair = self.by_pair.get((message.to, message.from_))
        if pair is not None and message in pair:
            pair.remove(message)

    def matching(self, to: str | None, from_: str | None) -> list[SimMessage]:
        """Messages in creation order, filtered by To and/or From (indexed when both)."""
        if to and from_:
            return self.by_pair.get((to, from_), [])
        if not to and not from_:
            return self.messages
        return [m for m in self.messages if (not to or m.to == to) and (not from_ or m.from_ == from_)]
