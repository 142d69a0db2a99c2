"""What a signup must look like, as the CRM hook or a CSV row gives it. Pure, no I/O.

The same rules serve `POST /v1/leads` and `leadsms import`, so a lead the hook refuses
is a row the import reports, for the same reason. The phone is not judged here: a signup
with a bad phone is still a signup (stored, then marked `invalid` with a reason by
`shared.phones.check_phone`); only a phone that is not text at all, or too long to be
one, makes the signup itself malformed.

`signed_up_at` must carry its timezone (`Z` or an offset). A naive time is refused
rather than guessed at: read in the wrong zone it would reorder a person's signups, and
the newest signup is the one a conversation points at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from firms.zones import is_timezone

# Longest accepted value of each text field, in characters.
LIMITS: dict[str, int] = {"external_id": 200, "name": 200, "email": 320, "event": 200, "phone": 50,
                          "timezone": 64, "postal_code": 20}

SIGNED_UP_AT_HINT = "an ISO-8601 date-time with a timezone, like 2024-05-01T18:30:00Z"


class LeadInputError(ValueError):
    """A malformed signup: `field` names the culprit, `code` is `missing_field` or `invalid_field`."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class LeadInput:
    external_id: str
    name: str
    email: str
    event: str
    phone_raw: str | None
    signed_up_at: datetime | None  # None: the time it reached us
    timezone: str | None = None     # IANA zone the CRM knows the lead is in
    postal_code: str | None = None  # kept as given; a US ZIP places the lead (zone, state)


def _text(field: str, value: Any, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise LeadInputError(field, "missing_field", f"{field} is required.")
        return ""
    if not isinstance(value, str):
        raise LeadInputError(field, "invalid_field", f"{field} must be a string.")
    if len(value) > LIMITS[field]:
        raise LeadInputError(field, "invalid_field", f"{field} must be at most {LIMITS[field]} characters.")
    if "\x00" in value:
        raise LeadInputError(field, "invalid_field", f"{field} must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON, or bad bytes in a CSV)
        raise LeadInputError(field, "invalid_field", f"{field} is not valid UTF-8 text.") from None
    if required and not value.strip():
        raise LeadInputError(field, "missing_field", f"{field} must not be empty.")
    return value


def parse_signed_up_at(value: Any) -> datetime | None:
    """An aware datetime (UTC), or None when absent; `LeadInputError` when malformed or naive."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise LeadInputError("signed_up_at", "invalid_field", f"signed_up_at must be {SIGNED_UP_AT_HINT}.")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LeadInputError("signed_up_at", "invalid_field", f"signed_up_at must be {SIGNED_UP_AT_HINT}.") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise LeadInputError("signed_up_at", "invalid_field",
                             f"signed_up_at has no timezone: send {SIGNED_UP_AT_HINT}.")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise LeadInputError("signed_up_at", "invalid_field", "signed_up_at is out of range.") from None


def parse_timezone(value: Any) -> str | None:
    """An IANA zone name, or None when absent; `LeadInputError` naming the field otherwise."""
    if value is None or value == "":
        return None
    text = _text("timezone", value).strip()
    if not is_timezone(text):
        raise LeadInputError("timezone", "invalid_field",
                             f"timezone must be an IANA time zone like America/Chicago, got {text[:64]!r}.")
    return text


def parse_postal_code(value: Any) -> str | None:
    """Any postal code, trimmed (only a US ZIP is used for the zone); None when absent."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:05d}"
    text = _text("postal_code", value).strip()
    return text or None


def lead_from_json(body: Mapping[str, Any]) -> LeadInput:
    """The hook's body (already a JSON object). Unknown fields are ignored; name, email and
    event may be absent, null or empty; phone may be absent or null (a signup without one)."""
    return LeadInput(
        external_id=_text("external_id", body.get("external_id"), required=True),
        name=_text("name", body.get("name")),
        email=_text("email", body.get("email")),
        event=_text("event", body.get("event")),
        phone_raw=_text("phone", body["phone"]) if body.get("phone") is not None else None,
        signed_up_at=parse_signed_up_at(body.get("signed_up_at")),
        timezone=parse_timezone(body.get("timezone")),
        postal_code=parse_postal_code(body.get("postal_code")),
    )


def lead_from_row(row: Mapping[str, str]) -> LeadInput:
    """A CSV row by column name (every value a string; an empty cell means absent)."""
    phone = row.get("phone") or None
    return LeadInput(
        external_id=_text("external_id", row.get("external_id") or None, required=True),
        name=_text("name", row.get("name")),
        email=_text("email", row.get("email")),
        event=_text("event", row.get("event")),
        phone_raw=_text("phone", phone) if phone is not None else None,
        signed_up_at=parse_signed_up_at(row.get("signed_up_at")),
    )


# API field name -> `leads` column, for the fields a CRM may change on a stored signup.
UPDATABLE_FIELDS = {"name": "name", "email": "email", "event": "event", "phone": "phone_raw",
                    "signed_up_at": "signed_up_at", "timezone": "timezone", "postal_code": "postal_code"}


def changes_from_lead(lead: LeadInput) -> dict[str, Any]:
    """What a repost of a known external_id says each field should be (API names). A
    field the CRM may leave out (signed_up_at, timezone, postal_code) counts only when sent."""
    fields: dict[str, Any] = {"name": lead.name, "email": lead.email, "event": lead.event, "phone": lead.phone_raw}
    for name in ("signed_up_at", "timezone", "postal_code"):
        value = getattr(lead, name)
        if value is not None:
            fields[name] = value
    return fields


def changes_from_json(body: Mapping[str, Any]) -> dict[str, Any]:
    """`PATCH /v1/leads/{id}`: the fields present in the body, checked by the hook's rules
    (API names). external_id cannot change; an unknown field is refused, so a typo is not
    silently ignored."""
    unknown = sorted(set(body) - set(UPDATABLE_FIELDS))
    if unknown:
        raise LeadInputError(unknown[0], "invalid_field",
                             f"{unknown[0]} cannot be changed (fields: {', '.join(UPDATABLE_FIELDS)}).")
    parsers = {
        "name": lambda v: _text("name", v), "email": lambda v: _text("email", v),
        "event": lambda v: _text("event", v),
        "phone": lambda v: _text("phone", v) if v is not None else None,
        "signed_up_at": parse_signed_up_at, "timezone": parse_timezone, "postal_code": parse_postal_code,
    }
    fields = {name: parsers[name](value) for name, value in body.items()}
    if "signed_up_at" in fields and fields["signed_up_at"] is None:
        raise LeadInputError("signed_up_at", "invalid_field", f"signed_up_at must be {SIGNED_UP_AT_HINT}.")
    if not fields:
        raise LeadInputError("body", "missing_field", "Send at least one field to change.")
    return fields
