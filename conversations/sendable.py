"""The sendable decision: the sendable table (docs/send-pipeline.md), one definition.

The rule itself lives in SQL (`send_block_code(firm_id, phone_status, phone_e164)`,
migration 0002) so the picker can filter thousands of rows with it and the send path
can re-check inside its transaction. This module holds the product's words for each
code and small helpers to ask the question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Notice:
    level: str  # "info" | "warning"
    code: str
    text: str

    def as_json(self) -> dict[str, str]:
        return {"level": self.level, "code": self.code, "text": self.text}


# The sendable table, in its order. Texts are the product's words: do not paraphrase.
NOTICES: dict[str, Notice] = {
    n.code: n
    for n in (
        Notice("info", "no_phone", "This lead has no phone number on file."),
        Notice("info", "pending", "This lead's phone number is still being checked. Try again in a moment."),
        Notice("warning", "invalid_phone", "This lead's phone number isn't valid, so it can't receive SMS messages."),
        Notice("warning", "landline", "This number is a landline and can't receive SMS messages"),
        Notice("info", "opted_out", "This lead has opted out of SMS. You can't send messages until they text START to opt back in."),
        Notice("warning", "review_opt_out", "This lead's last reply may be a request to stop texting. Review it before sending."),
        Notice("warning", "blocked", "Texts to this number keep being filtered by carriers, so it has been blocked."),
    )
}


def rate_limit_text(limit: int) -> str:
    return f"Rate limit: {limit} messages per minute. Try again shortly."


@dataclass(frozen=True)
class Decision:
    sendable: bool
    code: str | None

    @property
    def notice(self) -> Notice | None:
        return NOTICES[self.code] if self.code else None

    def as_json(self) -> dict[str, Any]:
        notice = self.notice
        return {"sendable": self.sendable, "code": self.code, "notice": notice.as_json() if notice else None}


def decision_from_code(code: str | None) -> Decision:
    return Decision(sendable=code is None, code=code)


async def decide_for_phone(conn: asyncpg.Connection | asyncpg.Pool, firm_id: int, phone_e164: str) -> Decision:
    """The decision for a conversation's phone (a valid E.164 number by construction)."""
    code = await conn.fetchval("SELECT send_block_code($1, 'valid', $2)", firm_id, phone_e164)
    return decision_from_code(code)
