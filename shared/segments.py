"""How many SMS segments a body costs, by the GSM 03.38 / UCS-2 rules carriers bill by.

One definition shared by the Twilio simulator (its `num_segments`) and the send pipeline
(the `segments` we store and show), so the two can never disagree.

- A body made only of GSM-7 characters is GSM-7: basic-table characters cost one septet,
  extension-table characters (``€ [ ] { } \\ ~ ^ |`` and form feed) cost two (ESC + char).
  Up to 160 septets fit one segment; a longer body is split in segments of 153 (the
  user-data header takes 7), and an escape pair is never split across two segments.
- Anything else is UCS-2: counted in UTF-16 code units (an emoji is two), 70 in one
  segment, 67 per segment when split, and a surrogate pair is never split.

Pure functions, no I/O; linear in the body's length.
"""

from __future__ import annotations

from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_SINGLE_LIMIT = 160
GSM7_SEGMENT = 153
UCS2_SINGLE_LIMIT = 70
UCS2_SEGMENT = 67

# The GSM 03.38 default alphabet (ESC, 0x1B, is left out: it only introduces the
# extension table, a body cannot contain it as a character of its own).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def _gsm7_units(body: str) -> list[int] | None:
    """Septets per character, or None when a character is outside GSM-7."""
    units: list[int] = []
    for ch in body:
        if ch in GSM7_BASIC:
            units.append(1)
        elif ch in GSM7_EXTENSION:
            units.append(2)
        else:
            return None
    return units


def _utf16_units(body: str) -> list[int]:
    """UTF-16 code units per character: 2 for astral characters (surrogate pairs)."""
    return [2 if ord(ch) > 0xFFFF else 1 for ch in body]


def encoding_of(body: str) -> Encoding:
    """"GSM-7" when every character is in the GSM-7 tables, else "UCS-2"."""
    return "GSM-7" if _gsm7_units(body) is not None else "UCS-2"


def _pack(units: list[int], single_limit: int, per_segment: int) -> int:
    total = sum(units)
    if total <= single_limit:
        return 1
    segments, used = 1, 0
    for width in units:  # a character (escape or surrogate pair) never straddles segments
        if used + width > per_segment:
            segments += 1
            used = 0
        used += width
    return segments


def count_segments(body: str) -> int:
    """Segments `body` is billed as; an empty body still takes one segment."""
    return segment_info(body)[1]


def segment_info(body: str) -> tuple[Encoding, int]:
    """(encoding, segments) in one pass over the body."""
    units = _gsm7_units(body)
    if units is not None:
        return "GSM-7", _pack(units, GSM7_SINGLE_LIMIT, GSM7_SEGMENT)
    return "UCS-2", _pack(_utf16_units(body), UCS2_SINGLE_LIMIT, UCS2_SEGMENT)
