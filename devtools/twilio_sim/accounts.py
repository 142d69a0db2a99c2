"""Twilio accounts as the simulator knows them: credentials, owned numbers, Messaging
Services, and Twilio's default opt-out per sender.

- The main account (the configured `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN`) owns every
  number until numbers are registered for it (`POST /sim/accounts`), so the demo and
  tests that do not care need no set-up. Once registered, it owns exactly those.
- A subaccount (`POST /sim/accounts {"sid", "auth_token", "numbers", "messaging_services"}`)
  owns exactly its numbers and services; registering it again with another token makes
  the old token fail with 20003, as a rotated or revoked token does at Twilio.
- A create from a number the account does not own answers 21606, with a Messaging
  Service it does not own 21705.
- After a recipient texts STOP (or another of Twilio's default opt-out words) to a
  sender, creates from that sender to that recipient answer 21610 until it texts START.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Twilio's default opt-out and opt-in words (Advanced Opt-Out off).
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})


@dataclass
class SimAccount:
    sid: str
    auth_token: str
    numbers: set[str] | None = None  # None: owns every number (the main account, until registered)
    messaging_services: dict[str, list[str]] = field(default_factory=dict)  # MG sid -> its numbers

    def owns_number(self, number: str) -> bool:
        if self.numbers is None:
            return True
        return number in self.numbers or any(number in pool for pool in self.messaging_services.values())

    def service_of(self, number: str) -> str | None:
        for sid, pool in self.messaging_services.items():
            if number in pool:
                return sid
        return None

    def public(self) -> dict[str, Any]:
        return {"sid": self.sid, "numbers": None if self.numbers is None else sorted(self.numbers),
                "messaging_services": self.messaging_services}


class Accounts:
    def __init__(self, main_sid: str, main_token: str) -> None:
        self.main_sid, self.main_token = main_sid, main_token
        self.reset()

    def reset(self) -> None:
        self.by_sid: dict[str, SimAccount] = {self.main_sid: SimAccount(self.main_sid, self.main_token)}
        self.opted_out: set[tuple[str, str]] = set()  # (sender, recipient)

    def register(self, payload: Any) -> SimAccount:
        """Add or replace an account from `POST /sim/accounts`; ValueError names what is wrong."""
        if not isinstance(payload, dict) or not isinstance(payload.get("sid"), str) \
                or not payload["sid"].startswith("AC"):
            raise ValueError('Send {"sid": "AC…", "auth_token": "…", "numbers": [...], "messaging_services": {...}}')
        sid = payload["sid"]
        token = payload.get("auth_token", self.main_token if sid == self.main_sid else None)
        if not isinstance(token, str) or not token:
            raise ValueError("auth_token must be a non-empty string")
        numbers = payload.get("numbers", [])
        services = payload.get("messaging_services", {})
        if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
            raise ValueError("numbers must be a list of E.164 strings")
        if not isinstance(services, dict) or not all(
                isinstance(k, str) and k.startswith("MG") and isinstance(v, list) for k, v in services.items()):
            raise ValueError("messaging_services must map MG… sids to lists of numbers")
        account = SimAccount(sid, token, set(numbers), {k: list(v) for k, v in services.items()})
        self.by_sid[sid] = account
        if sid == self.main_sid:
            self.main_token = token
        return account

    def authenticate(self, login: str, password: str) -> SimAccount | None:
        account = self.by_sid.get(login)
        return account if account is not None and account.auth_token == password else None

    def owner_of(self, number: str) -> SimAccount:
        """The account an inbound text to `number` belongs to (the main one when no
        registered account owns it)."""
        for account in self.by_sid.values():
            if account.numbers is not None and account.owns_number(number):
                return account
        return self.by_sid[self.main_sid]

    def record_inbound(self, sender: str, recipient_number: str, body: str) -> None:
        """Twilio's default opt-out: `sender` (the lead) texted `body` to `recipient_number`."""
        word = body.strip().rstrip(".!").upper()
        if word in OPT_OUT_WORDS:
            self.opted_out.add((recipient_number, sender))
        elif word in OPT_IN_WORDS:
            self.opted_out.discard((recipient_number, sender))

    def is_opted_out(self, from_: str, to: str) -> bool:
        return (from_, to) in self.opted_out
