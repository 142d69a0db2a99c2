"""The lead picker's pure side: what a typed `q` means, before any SQL runs.

The picker's rule (docs/portal-api.md): at least 2 characters; a match on name, email or
phone of any signup; digits typed in any format ("(212) 555", "212-555-01", "+1212555") match the stored
E.164 number. Deciding the mode here keeps the SQL simple and the rule testable without a
database.

- `text` mode (q has a letter, or fewer than 3 digits): case-insensitive substring of
  name or email.
- `digits` mode (q has no letter and at least 3 digits): substring of the phone's digits;
  punctuation, spaces and a leading + are ignored.

`indexed` says whether a trigram index can serve the substring match: pg_trgm needs a run
of 3 word characters to extract a trigram. Without one (a 2-character q, or "a.b"), the
substring match runs over the firm's newest signups only, so the query stays bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

MIN_CHARS = 2
MAX_CHARS = 200
MIN_DIGITS = 3

_LIKE_SPECIAL = re.compile(r"([\\%_])")
_WORD_RUN = re.compile(r"[^\W_]{3,}")  # pg_trgm's word characters are alphanumerics


class BadQuery(ValueError):
    """q cannot be searched (too long, or characters PostgreSQL text cannot hold)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PickerQuery:
    mode: str  # "text" | "digits"
    needle: str  # text mode: q trimmed (lowered in SQL); digits mode: its digits
    indexed: bool  # a trigram index can serve the substring match

    @property
    def pattern(self) -> str:
        """The LIKE pattern for a substring match (metacharacters escaped)."""
        return "%" + escape_like(self.needle) + "%"


def escape_like(text: str) -> str:
    r"""`text` as a literal inside a LIKE pattern (default escape character `\`)."""
    return _LIKE_SPECIAL.sub(r"\\\1", text)


def digits_only(text: str) -> str:
    """ASCII digits of `text` in order (what a phone number typed in any format keeps)."""
    return "".join(ch for ch in text if "0" <= ch <= "9")


def normalize_query(raw: str | None) -> PickerQuery | None:
    """The search for a raw `q`, or None when it is too short to search.

    Raises `BadQuery` for a q longer than MAX_CHARS or one PostgreSQL cannot take (NUL,
    lone surrogates), so the route answers 400 rather than failing in the driver.
    """
    q = (raw or "").strip()
    if len(q) > MAX_CHARS:
        raise BadQuery("q_too_long", f"q must be at most {MAX_CHARS} characters.")
    if "\x00" in q:
        raise BadQuery("bad_query", "q must not contain NUL characters.")
    try:
        q.encode("utf-8")
    except UnicodeEncodeError:
        raise BadQuery("bad_query", "q must be valid text.") from None
    if len(q) < MIN_CHARS:
        return None
    digits = digits_only(q)
    if len(digits) >= MIN_DIGITS and not any(ch.isalpha() for ch in q):
        return PickerQuery(mode="digits", needle=digits, indexed=True)
    return PickerQuery(mode="text", needle=q, indexed=bool(_WORD_RUN.search(q)))


def country_code(region: str) -> str:
    """The calling code of the firm's default region ("US" -> "1"), "" when unknown.

    Staff type national numbers ("212 555"); stored numbers carry the country code, so a
    national prefix is ranked as a prefix too.
    """
    code = phonenumbers.country_code_for_region(region.upper())
    return str(code) if code else ""


def list_search(raw: str | None) -> tuple[str | None, str | None]:
    """The conversation list's `q` as (name pattern, digits pattern) for LIKE; (None, None)
    when q is under MIN_CHARS (no filter). The same modes as the picker: digits typed in any
    format match the phone's digits, anything else is a substring of the lead's name.
    Raises `BadQuery` as `normalize_query` does."""
    query = normalize_query(raw)
    if query is None:
        return None, None
    return (query.pattern, None) if query.mode == "text" else (None, query.pattern)
