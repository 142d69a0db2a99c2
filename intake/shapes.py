"""api.md's lead shape, one function: `GET /v1/leads/{id}` and the feed's `lead.updated`."""

from __future__ import annotations

from typing import Any, Mapping

from conversations.sendable import decision_from_code


def lead_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """The lead shape from an `intake.queries.lead_for_firm` row."""
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
