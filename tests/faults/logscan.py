"""Secrets in logs: read what real processes wrote and find any secret in it.

Secrets never appear at any level: the Twilio auth token (also as the Basic credentials
the SDK sends), API keys (valid or not). Message bodies may appear at debug level only.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass


@dataclass
class Leak:
    what: str
    line: str


def scan(text: str, *, secrets: dict[str, str], bodies: list[str]) -> list[Leak]:
    """Every line of `text` holding a secret (any level) or a body (above debug)."""
    leaks: list[Leak] = []
    needles = {name: value for name, value in secrets.items() if value}
    for line in text.splitlines():
        for name, value in needles.items():
            if value in line:
                leaks.append(Leak(name, line[:300]))
        if bodies and _level(line) != "debug":
            for body in bodies:
                if body in line:
                    leaks.append(Leak("message body", line[:300]))
                    break
    return leaks


def basic_credentials(account_sid: str, token: str) -> str:
    return base64.b64encode(f"{account_sid}:{token}".encode()).decode()


def _level(line: str) -> str:
    try:
        return str(json.loads(line).get("level", "")).lower()
    except (ValueError, AttributeError):
        return ""  # not a JSON record (a traceback line, say): counts as above debug
