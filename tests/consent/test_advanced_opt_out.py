"""What an inbound text means for consent when Twilio's Advanced Opt-Out is on (pure)."""

import pytest

from consent.keywords import Keyword, default_help_text, inbound_keyword


@pytest.mark.parametrize(("params", "expected"), [
    ({"Body": "Arrêt!", "OptOutType": "STOP"}, Keyword("opt_out", "arrêt")),
    ({"Body": "please stop", "OptOutType": "stop"}, Keyword("opt_out", "please stop")),
    ({"Body": "", "OptOutType": "START"}, Keyword("opt_in", "start")),
    ({"Body": "STOP", "OptOutType": "HELP"}, Keyword("help", "stop")),
    ({"Body": "STOP", "OptOutType": "SOMETHING_NEW"}, Keyword("opt_out", "stop")),  # unknown type: our list
    ({"Body": "Stop."}, Keyword("opt_out", "stop")),
    ({"Body": "We have got to STOP this bill"}, None),
])
def test_opt_out_type_decides_over_the_keyword_list_when_present(params, expected):
    assert inbound_keyword(params) == expected


def test_the_default_help_text_names_the_firm_and_how_to_stop():
    text = default_help_text("Acme Seminars")
    assert text.startswith("Acme Seminars") and text.endswith("Reply STOP to opt out.")
