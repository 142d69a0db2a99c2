from datetime import datetime, timezone

import pytest

from intake.validation import LeadInputError, lead_from_json, lead_from_row, parse_signed_up_at


def test_a_full_hook_body_is_read_as_it_came():
    lead = lead_from_json({"external_id": "crm-1", "name": " Dana ", "email": "d@example.com",
                           "event": "Spring", "phone": "(212) 555-0142",
                           "signed_up_at": "2024-05-01T18:30:00-04:00", "utm_source": "ignored"})
    assert lead.external_id == "crm-1"
    assert lead.name == " Dana "
    assert lead.phone_raw == "(212) 555-0142"
    assert lead.signed_up_at == datetime(2024, 5, 1, 22, 30, tzinfo=timezone.utc)


def test_name_email_event_may_be_absent_null_or_empty_and_phone_absent_or_null():
    lead = lead_from_json({"external_id": "crm-2", "name": None, "email": "", "phone": None})
    assert (lead.name, lead.email, lead.event, lead.phone_raw, lead.signed_up_at) == ("", "", "", None, None)
    assert lead_from_json({"external_id": "crm-3"}).phone_raw is None


@pytest.mark.parametrize(
    ("body", "field", "code", "words"),
    [
        ({}, "external_id", "missing_field", "external_id is required"),
        ({"external_id": "   "}, "external_id", "missing_field", "must not be empty"),
        ({"external_id": 42}, "external_id", "invalid_field", "must be a string"),
        ({"external_id": "x" * 201}, "external_id", "invalid_field", "at most 200 characters"),
        ({"external_id": "a", "name": ["Dana"]}, "name", "invalid_field", "name must be a string"),
        ({"external_id": "a", "name": "n" * 201}, "name", "invalid_field", "at most 200"),
        ({"external_id": "a", "email": "e" * 321}, "email", "invalid_field", "at most 320"),
        ({"external_id": "a", "event": {"x": 1}}, "event", "invalid_field", "must be a string"),
        ({"external_id": "a", "phone": 2125550142}, "phone", "invalid_field", "phone must be a string"),
        ({"external_id": "a", "phone": "1" * 51}, "phone", "invalid_field", "at most 50"),
        ({"external_id": "a", "name": "Da\x00na"}, "name", "invalid_field", "NUL"),
        ({"external_id": "a", "name": "Da\ud800na"}, "name", "invalid_field", "UTF-8"),
        ({"external_id": "a", "signed_up_at": "yesterday"}, "signed_up_at", "invalid_field", "ISO-8601"),
        ({"external_id": "a", "signed_up_at": 1714588200}, "signed_up_at", "invalid_field", "ISO-8601"),
        ({"external_id": "a", "signed_up_at": "2024-05-01T18:30:00"}, "signed_up_at", "invalid_field", "no timezone"),
        ({"external_id": "a", "signed_up_at": "2024-05-01"}, "signed_up_at", "invalid_field", "no timezone"),
    ],
)
def test_a_malformed_body_names_the_field_and_what_is_wrong(body, field, code, words):
    with pytest.raises(LeadInputError) as caught:
        lead_from_json(body)
    assert (caught.value.field, caught.value.code) == (field, code)
    assert words in caught.value.message


def test_signed_up_at_accepts_z_offsets_and_a_space_separator():
    expected = datetime(2024, 5, 1, 18, 30, tzinfo=timezone.utc)
    assert parse_signed_up_at("2024-05-01T18:30:00Z") == expected
    assert parse_signed_up_at("2024-05-01 20:30:00+02:00") == expected
    assert parse_signed_up_at("") is None
    assert parse_signed_up_at(None) is None


def test_a_csv_row_treats_empty_cells_as_absent():
    lead = lead_from_row({"external_id": "r-1", "name": "Dana", "email": "", "phone": "", "event": "",
                          "signed_up_at": ""})
    assert (lead.phone_raw, lead.signed_up_at) == (None, None)
    with pytest.raises(LeadInputError, match="external_id is required"):
        lead_from_row({"external_id": "", "name": "Dana"})
