"""The JSON shapes of messages, conversations and leads (docs/openapi.yaml), one function
each: pure, no I/O.

Every answer and every event that carries a message, a conversation or a lead is built
here, so the portal, intake, the send path and the change feed cannot disagree on a field.
"""

from __future__ import annotations

from typing import Any, Mapping

from conversations.sendable import NOTICES, decision_from_code

PREVIEW_CHARS = 100

# The API's message shape, in its order.
MESSAGE_FIELDS = (
    "id", "conversation_id", "direction", "body", "status", "twilio_status", "blocked_reason",
    "sent_by", "twilio_sid", "error_code", "error_message", "segments", "send_at", "created_at",
)


def message_json(row: Mapping[str, Any], *, deduplicated: bool = False) -> dict[str, Any]:
    """The API's message shape for a `messages` row (any mapping with its columns).

    `created_at` and `updated_at` are ISO-8601 strings; `deduplicated` says whether this
    answer is the first request's message returned to a duplicate inside the window.
    """
    out: dict[str, Any] = {name: row.get(name) if name == "send_at" else row[name] for name in MESSAGE_FIELDS}
    out["send_at"] = _iso(out["send_at"])
    out["cancel_on_reply"] = bool(row.get("cancel_on_reply") or False)
    out["created_at"] = _iso(row["created_at"])
    out["updated_at"] = _iso(row["updated_at"]) if "updated_at" in row else None
    # The number it went from (or came in to): set when released to a worker, or, for a
    # Messaging Service send, once Twilio says which of the service's numbers it chose.
    out["from_number"] = row["from_number"] if "from_number" in row else None
    out["deduplicated"] = deduplicated
    return out


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def preview(body: str | None) -> str | None:
    """The start of a message for the list: at most PREVIEW_CHARS characters, then '…'."""
    if body is None or len(body) <= PREVIEW_CHARS:
        return body
    return body[:PREVIEW_CHARS].rstrip() + "…"


def notice_json(code: str | None) -> dict[str, str] | None:
    return NOTICES[code].as_json() if code else None


def conversation_json(row: Mapping[str, Any], *, quiet_notice: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The API's conversation shape (list item, thread open, conversation create), plus
    `line_type`, from a `conversations.queries` conversation row. `name` is null when no
    signup names the phone; `needs_reply` is true when the last message is the lead's.

    `quiet_notice` (thread open, while the lead's texting window is closed) is shown when
    nothing blocks sending: `can_send` stays true, a send can still be scheduled."""
    code = row["block_code"]
    last = None
    if row["m_id"] is not None:
        body = row["m_body"]
        last = {
            "id": row["m_id"],
            "direction": row["m_direction"],
            "body": preview(body),
            "truncated": body is not None and len(body) > PREVIEW_CHARS,
            "status": row["m_status"],
            "created_at": row["m_created_at"],
        }
    return {
        "conversation_id": row["id"],
        "lead_id": row["lead_id"],
        "phone": row["phone_e164"],
        "name": row["name"],
        "can_send": code is None,
        "notice": notice_json(code) if code or quiet_notice is None else dict(quiet_notice),
        "line_type": row["line_type"],
        "last_message_at": row["last_message_at"],
        "last_message": last,
        "needs_reply": last is not None and last["direction"] == "in",
    }


def lead_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """api.md's lead shape (`GET /v1/leads/{id}`, the feed's `lead.updated`) from a
    `queries.lead_for_firm` / `queries.leads_of_phone` row."""
    return {
        "lead_id": row["lead_id"],
        "external_id": row["external_id"],
        "name": row["name"],
        "email": row["email"],
        "event": row["event"],
        "phone": row["phone_e164"] or row["phone_raw"],
        "phone_raw": row["phone_raw"],
        "phone_status": row["phone_status"],
        "phone_error": row["phone_error"],
        "line_type": row["line_type"],
        "carrier": row["carrier"],
        "line_checked_at": row["line_checked_at"],
        "signed_up_at": row["signed_up_at"],
        "timezone": row["timezone"],
        "postal_code": row["postal_code"],
        "created_at": row["created_at"],
        **decision_from_code(row["code"]).as_json(),
    }
