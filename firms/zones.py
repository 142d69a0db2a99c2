"""Where a firm and a lead are on the clock: IANA zones from a name, a US ZIP or a phone's
area code. Pure lookups (zoneinfo, `zipcodes`, phonenumbers' timezone data), cached.

A phone's area code can span zones (605: Mountain and Central): every zone it may be in
is returned, and the quiet-hours decision uses the overlap of their windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

# Used when nothing else names a zone (a number phonenumbers cannot place).
FALLBACK_ZONE = "America/New_York"

US_ZIP_RE = re.compile(r"^\s*(\d{5})(?:-\d{4})?\s*$")

# phonenumbers answers this for a number it cannot place.
_UNKNOWN = phone_timezones.UNKNOWN_TIMEZONE


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo | None:
    """The zone for an IANA name, or None when it is not one (a file path, a typo...)."""
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def is_timezone(name: str) -> bool:
    return zone(name) is not None


@dataclass(frozen=True)
class ZipPlace:
    timezone: str
    state: str


@lru_cache(maxsize=4096)
def place_for_us_zip(postal_code: str | None) -> ZipPlace | None:
    """Zone and state of a US ZIP (5 digits, or ZIP+4); None for anything else."""
    if not postal_code:
        return None
    match = US_ZIP_RE.match(postal_code)
    if match is None:
        return None
    import zipcodes  # its table loads on first use; only the ZIP path pays for it

    try:
        found = zipcodes.matching(match.group(1))
    except (ValueError, TypeError):
        return None
    for entry in found:
        tz, state = entry.get("timezone"), entry.get("state")
        if tz and is_timezone(tz) and state:
            return ZipPlace(tz, state)
    return None


@lru_cache(maxsize=4096)
def zones_for_phone(phone_e164: str | None) -> tuple[str, ...]:
    """Every zone the number's area code may be in (phonenumbers), valid names only;
    () when it cannot be placed."""
    if not phone_e164:
        return ()
    try:
        parsed = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return ()
    names = phone_timezones.time_zones_for_number(parsed)
    return tuple(n for n in names if n != _UNKNOWN and is_timezone(n))


# US states and territories by full name (phonenumbers' geocoder says "Florida" for an
# area code that covers the state, "Miami, FL" for a narrower one).
_STATE_NAMES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA",
    "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT",
    "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM",
    "New York": "NY", "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Washington D.C.": "DC", "Puerto Rico": "PR",
}
_STATE_CODES = frozenset(_STATE_NAMES.values())


@lru_cache(maxsize=4096)
def state_for_phone(phone_e164: str | None) -> str | None:
    """The US state of a +1 number's area code, when phonenumbers' geocoder names one."""
    if not phone_e164 or not phone_e164.startswith("+1"):
        return None
    from phonenumbers import geocoder

    try:
        where = geocoder.description_for_number(phonenumbers.parse(phone_e164, None), "en")
    except phonenumbers.NumberParseException:
        return None
    if where in _STATE_NAMES:
        return _STATE_NAMES[where]
    tail = where.rsplit(", ", 1)[-1] if ", " in where else ""
    return tail if tail in _STATE_CODES else None


def firm_zone(timezone: str | None, sms_number: str | None) -> str:
    """A firm's zone: the one it set, else its number's area code's (the first, when the
    code spans several), else FALLBACK_ZONE."""
    if timezone and is_timezone(timezone):
        return timezone
    zones = zones_for_phone(sms_number)
    return zones[0] if zones else FALLBACK_ZONE


@dataclass(frozen=True)
class LeadPlace:
    """Where a lead is on the clock: one zone, or every zone its area code spans (the
    window is their overlap); the state when known (for a state's stricter window);
    `source` says which of design.md's steps decided (timezone, postal_code, phone, firm)."""

    zones: tuple[str, ...]
    state: str | None
    source: str


def lead_place(timezone: str | None, postal_code: str | None, phone_e164: str | None,
               firm_timezone: str | None, firm_number: str | None) -> LeadPlace:
    """design.md's order: the signup's timezone, its US ZIP, its phone's area code, the firm's zone."""
    phone_state = state_for_phone(phone_e164)
    if timezone and is_timezone(timezone):
        zip_place = place_for_us_zip(postal_code)
        return LeadPlace((timezone,), zip_place.state if zip_place else phone_state, "timezone")
    zip_place = place_for_us_zip(postal_code)
    if zip_place is not None:
        return LeadPlace((zip_place.timezone,), zip_place.state, "postal_code")
    zones = zones_for_phone(phone_e164)
    if zones:
        return LeadPlace(zones, phone_state, "phone")
    return LeadPlace((firm_zone(firm_timezone, firm_number),), phone_state, "firm")
