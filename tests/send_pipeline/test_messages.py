from datetime import datetime, timezone

import pytest

from conversations.shapes import message_json
from send_pipeline.messages import MAX_BODY_CHARS, backoff_ms, clean_body
from shared.errors import HttpError


def test_a_body_is_trimmed_before_it_is_sent():
    assert clean_body({"body": "  Hello Dana \n"}) == "Hello Dana"


@pytest.mark.parametrize("data, code", [
    ({}, "missing_body"),
    ({"body": 42}, "invalid_body"),
    ({"body": None}, "invalid_body"),
    ({"body": "   "}, "empty_body"),
    ({"body": "x" * (MAX_BODY_CHARS + 1)}, "body_too_long"),
    ({"body": "hi\x00there"}, "invalid_body"),
    ({"body": "half an emoji \ud83d"}, "invalid_body"),
])
def test_a_body_that_is_not_sendable_text_is_refused_with_400(data, code):
    with pytest.raises(HttpError) as caught:
        clean_body(data)
    assert (caught.value.status, caught.value.code) == (400, code)


def test_a_body_of_exactly_1600_characters_is_accepted():
    assert len(clean_body({"body": "é" * MAX_BODY_CHARS})) == MAX_BODY_CHARS


def test_backoff_doubles_from_the_minimum_and_stops_at_the_cap():
    assert [backoff_ms(n, 100, 2000) for n in range(1, 8)] == [100, 200, 400, 800, 1600, 2000, 2000]
    assert backoff_ms(10_000, 1000, 300_000) == 300_000


def test_message_json_has_the_api_shape():
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    row = dict(id=7, conversation_id=3, direction="out", body="Hi", status="queued", twilio_status=None,
               blocked_reason=None, sent_by="u1", twilio_sid=None, error_code=None, error_message=None,
               segments=1, created_at=now, updated_at=now, firm_id=1)
    shown = message_json(row, deduplicated=True)
    assert set(shown) >= {"id", "conversation_id", "direction", "body", "status", "twilio_status",
                          "blocked_reason", "sent_by", "twilio_sid", "error_code", "error_message",
                          "segments", "created_at", "deduplicated"}
    assert shown["created_at"] == "2025-01-02T03:04:05+00:00"
    assert shown["deduplicated"] is True
    assert "firm_id" not in shown
