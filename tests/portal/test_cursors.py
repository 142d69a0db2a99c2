"""The conversation list's cursor: pure, no database."""

from __future__ import annotations

import datetime as dt

import pytest

from portal.shapes import BadCursor, decode_cursor, encode_cursor


def test_a_cursor_round_trips_to_the_microsecond():
    at = dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=dt.timezone.utc)
    assert decode_cursor(encode_cursor(at, 42)) == (at, 42)
    before_epoch = dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=dt.timezone.utc)
    assert decode_cursor(encode_cursor(before_epoch, 7)) == (before_epoch, 7)


@pytest.mark.parametrize("cursor", ["", "nope", "!!!", "MTIz", "x" * 65, "MS4tMQ", "OTk5OTk5OTk5OTk5OTk5OTk5OS4x"])
def test_anything_but_a_cursor_we_made_is_refused(cursor):
    with pytest.raises(BadCursor):
        decode_cursor(cursor)
