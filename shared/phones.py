"""Phone numbers: parse and normalise with phonenumbers, classify what is wrong.

Gate on `is_valid_number` (not `is_possible_number`). Besides what phonenumbers says,
national numbers of one repeated digit (0000000000) or a straight run
(1234567890, 0123456789, 9876543210) are invalid: they are what people type into
forms they do not want to fill in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat
from phonenumbers.phonenumberutil import ValidationResult

from shared.errors import AppError

E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")

_ASCENDING = "01234567890123456789"
_DESCENDING = "98765432109876543210"


@dataclass(frozen=True)
class PhoneCheck:
    status: str  # "valid" | "missing" | "invalid"
    e164: str | None = None
    error: str | None = None  # reason when invalid


def digits_of(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def is_junk_digits(national: str) -> str | None:
    """'all_same_digit' or 'sequential' for form-filler numbers, else None."""
    if len(national) >= 7 and len(set(national)) == 1:
        return "all_same_digit"
    if len(national) >= 7 and (national in _ASCENDING or national in _DESCENDING):
        return "sequential"
    return None


def check_phone(raw: str | None, region: str = "US") -> PhoneCheck:
    """Classify a phone as a CRM sent it: missing, invalid (with a reason) or valid (E.164)."""
    if raw is None or not raw.strip():
        return PhoneCheck("missing")
    text = raw.strip()
    digits = digits_of(text)
    if not digits:
        return PhoneCheck("invalid", error="unparseable")
    junk = is_junk_digits(digits[-10:] if len(digits) >= 10 else digits)
    if junk:
        return PhoneCheck("invalid", error=junk)
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        reason = {
            NumberParseException.TOO_SHORT_NSN: "too_short",
            NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
            NumberParseException.TOO_LONG: "too_long",
        }.get(exc.error_type, "unparseable")
        return PhoneCheck("invalid", error=reason)
    national = str(number.national_number)
    junk = is_junk_digits(national)
    if junk:
        return PhoneCheck("invalid", error=junk)
    if not phonenumbers.is_valid_number(number):
        possible = phonenumbers.is_possible_number_with_reason(number)
        if possible in (ValidationResult.TOO_SHORT, ValidationResult.INVALID_LENGTH) and len(national) < 10:
            return PhoneCheck("invalid", error="too_short")
        if possible == ValidationResult.TOO_LONG:
            return PhoneCheck("invalid", error="too_long")
        return PhoneCheck("invalid", error="not_a_valid_number")
    return PhoneCheck("valid", e164=phonenumbers.format_number(number, PhoneNumberFormat.E164))


def normalize_firm_number(raw: str) -> str:
    """A firm's own SMS number, which must be a valid E.164 number."""
    try:
        number = phonenumbers.parse(raw.strip(), None if raw.strip().startswith("+") else "US")
    except NumberParseException:
        raise AppError(f"--number {raw!r} is not a phone number", code="bad_number") from None
    if not phonenumbers.is_valid_number(number):
        raise AppError(f"--number {raw!r} is not a valid phone number", code="bad_number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)
