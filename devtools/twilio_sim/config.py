"""`SimConfig`: the credentials the simulator accepts and how it behaves.

Built from `Settings` so the simulator accepts exactly the credentials the rest of the
project is configured with; defaults let `leadsms twilio-sim` start with no environment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32  # well-formed (34 chars), and no real account has it
DEFAULT_AUTH_TOKEN = "simtoken"
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081

# What POST /sim/config may change at run time (credentials stay fixed).
RUNTIME_FIELDS = ("public_base_url", "callbacks_enabled", "callback_delay_s", "late_delay_s",
                  # fault knobs (faults.py): off by default
                  "fail_500_rate", "created_500_rate", "hang_rate", "list_500_rate", "slow_s", "hang_s",
                  "burst_429", "fault_seed", "list_slow_s", "lookup_500_rate",
                  "callback_duplicate_rate", "callback_reorder_rate")
_RATES = ("fail_500_rate", "created_500_rate", "hang_rate", "list_500_rate", "lookup_500_rate",
          "callback_duplicate_rate", "callback_reorder_rate")
_COUNTS = ("burst_429", "fault_seed")


@dataclass(frozen=True)
class SimConfig:
    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = DEFAULT_AUTH_TOKEN
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL  # where inbound texts are delivered
    callback_delay_s: float = 0.2  # before `sent`, and again before the outcome
    callbacks_enabled: bool = True
    late_delay_s: float = 2.0  # the 07xx scenario's lateness
    callback_timeout_s: float = 15.0  # Twilio gives a webhook 15 s
    # Fault knobs (see faults.py): fractions of creates, seconds, counts.
    fail_500_rate: float = 0.0  # answered 500, nothing created
    created_500_rate: float = 0.0  # created, then answered 500
    hang_rate: float = 0.0  # created, then answered only after hang_s
    list_500_rate: float = 0.0  # Messages list answered 500
    slow_s: float = 0.0  # every create answers this much later
    list_slow_s: float = 0.0  # every Messages list answers this much later
    lookup_500_rate: float = 0.0  # Lookup answered 500
    hang_s: float = 15.0
    burst_429: int = 0  # the next N creates are answered 429 (set to start a burst)
    callback_duplicate_rate: float = 0.0  # each status callback also POSTed a second time
    callback_reorder_rate: float = 0.0  # the outcome callback POSTed before `sent`
    fault_seed: int = 0  # seeds the draws, so a run can be repeated

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "SimConfig":
        values: dict[str, Any] = {
            "account_sid": settings.twilio_account_sid or DEFAULT_ACCOUNT_SID,
            "auth_token": settings.twilio_auth_token or DEFAULT_AUTH_TOKEN,
            "public_base_url": (settings.public_base_url or DEFAULT_PUBLIC_BASE_URL).rstrip("/"),
        }
        values.update(overrides)
        return cls(**values)

    def updated(self, changes: dict[str, Any]) -> "SimConfig":
        """A copy with run-time `changes` applied; ValueError names a bad field."""
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in RUNTIME_FIELDS:
                raise ValueError(f"{name} cannot be changed (changeable: {', '.join(RUNTIME_FIELDS)})")
            if name == "callbacks_enabled":
                if not isinstance(value, bool):
                    raise ValueError("callbacks_enabled must be true or false")
            elif name in _RATES:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise ValueError(f"{name} must be a fraction from 0 to 1")
                value = float(value)
            elif name in _COUNTS:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be a whole number, at least 0")
            elif name == "public_base_url":
                if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                    raise ValueError("public_base_url must be an http(s) URL")
                value = value.rstrip("/")
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{name} must be a number of seconds, at least 0")
                value = float(value)
            clean[name] = value
        return replace(self, **clean)

    def public(self) -> dict[str, Any]:
        """The config as shown over HTTP: without the auth token."""
        shown = asdict(self)
        shown.pop("auth_token")
        return shown
