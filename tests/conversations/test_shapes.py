"""The message preview: pure, no database."""

from __future__ import annotations

from conversations.shapes import PREVIEW_CHARS, preview


def test_a_long_body_is_cut_with_an_ellipsis():
    assert preview("short") == "short"
    assert preview(None) is None
    exact = "x" * PREVIEW_CHARS
    assert preview(exact) == exact
    cut = preview("word " * 50)
    assert cut.endswith("…") and len(cut) <= PREVIEW_CHARS + 1
