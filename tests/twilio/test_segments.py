"""SMS segment counting: GSM-7 (160/153, extension characters count two) and UCS-2
(70/67 UTF-16 units), never splitting an escape pair or a surrogate pair."""

from __future__ import annotations

import pytest

from shared.segments import count_segments, encoding_of, segment_info

EMOJI = "\U0001F600"  # two UTF-16 code units
CYRILLIC = "ж"  # outside GSM-7, one UTF-16 code unit


def test_160_gsm_characters_fit_one_segment_and_161_take_two():
    assert count_segments("a" * 160) == 1
    assert count_segments("a" * 161) == 2


def test_long_gsm_bodies_are_split_in_segments_of_153():
    assert count_segments("a" * 306) == 2
    assert count_segments("a" * 307) == 3


@pytest.mark.parametrize("char", ["€", "[", "]", "{", "}", "\\", "~", "^", "|", "\f"])
def test_gsm_extension_characters_count_two_septets(char):
    assert encoding_of(char * 80) == "GSM-7"
    assert count_segments(char * 80) == 1
    assert count_segments("a" * 159 + char) == 2


def test_an_escape_pair_on_a_segment_boundary_moves_whole_to_the_next_segment():
    # 306 septets would be exactly two segments of 153, but the € after 152 septets
    # cannot be split, so the second segment starts with it and a third is needed.
    body = "a" * 152 + "€" + "a" * 152
    assert count_segments(body) == 3
    assert count_segments("a" * 151 + "€" + "a" * 153) == 2


def test_an_emoji_at_70_utf16_units_fits_one_segment_and_at_71_takes_two():
    assert encoding_of("a" * 68 + EMOJI) == "UCS-2"
    assert count_segments("a" * 68 + EMOJI) == 1
    assert count_segments("a" * 69 + EMOJI) == 2


def test_ucs2_bodies_are_split_in_segments_of_67_utf16_units():
    assert count_segments(CYRILLIC * 70) == 1
    assert count_segments(CYRILLIC * 71) == 2
    assert count_segments(CYRILLIC * 134) == 2
    assert count_segments(CYRILLIC * 135) == 3


def test_a_surrogate_pair_on_a_segment_boundary_moves_whole_to_the_next_segment():
    body = CYRILLIC * 66 + EMOJI + CYRILLIC * 66  # 134 units, yet the emoji cannot straddle
    assert count_segments(body) == 3
    assert count_segments(CYRILLIC * 65 + EMOJI + CYRILLIC * 67) == 2


def test_one_character_outside_gsm7_makes_the_whole_body_ucs2():
    assert encoding_of("Hello, see you at the event!") == "GSM-7"
    assert encoding_of("Price: 10€ [early bird]") == "GSM-7"
    assert encoding_of("ça va?") == "UCS-2"  # only capital Ç is in GSM-7
    assert segment_info("a" * 100 + "ç") == ("UCS-2", 2)


def test_an_empty_body_still_counts_one_segment():
    assert count_segments("") == 1
