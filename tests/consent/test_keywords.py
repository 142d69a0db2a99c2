import pytest

from consent.keywords import classify_keyword, reads_like_opt_out


@pytest.mark.parametrize("body, kind, word", [
    ("STOP", "opt_out", "stop"),
    ("stop", "opt_out", "stop"),
    (" Stop. ", "opt_out", "stop"),
    ("Stop!!", "opt_out", "stop"),
    ("OPT OUT", "opt_out", "opt out"),
    ("opt  out", "opt_out", "opt out"),
    ("revoke", "opt_out", "revoke"),
    ("StopAll", "opt_out", "stopall"),
    ("unsubscribe", "opt_out", "unsubscribe"),
    ("cancel", "opt_out", "cancel"),
    ("END", "opt_out", "end"),
    ("quit", "opt_out", "quit"),
    ("OPTOUT", "opt_out", "optout"),
    ("START", "opt_in", "start"),
    ("yes.", "opt_in", "yes"),
    ("Unstop", "opt_in", "unstop"),
    ("HELP", "help", "help"),
    ("info?", "help", "info"),
])
def test_a_whole_body_keyword_is_recognised_whatever_its_case_spaces_and_trailing_punctuation(body, kind, word):
    keyword = classify_keyword(body)
    assert keyword is not None and (keyword.kind, keyword.word) == (kind, word)
    assert keyword.source == f"keyword:{word}"


@pytest.mark.parametrize("body", [
    "We have got to STOP this bill", "stop by tomorrow?", "Yes I will come", "STOP STOP", ".STOP",
    "please stop", "", "   ", "Ends at 5?",
])
def test_a_keyword_inside_a_longer_text_is_not_a_keyword(body):
    assert classify_keyword(body) is None


@pytest.mark.parametrize("body", [
    "please stop texting me", "Please stop texting me.", "remove me from your list", "don't text me",
    "Don’t text me again", "DO NOT CONTACT ME", "wrong number", "Wrong number!", "Take me off your list",
    "stop messaging me please", "leave me alone", "no more texts", "Please STOP!!!", "stop please",
    "lose my number", "unsubscribe me", "I think you have the wrong number",
])
def test_a_reply_that_reads_like_an_opt_out_goes_to_review(body):
    assert reads_like_opt_out(body) is not None


@pytest.mark.parametrize("body", [
    "We have got to STOP this bill", "Can you stop by tomorrow?", "I'll stop by at 5", "Sounds good, see you there",
    "What time does the event end?", "Can you cancel my registration?", "Who is this?", "Don't forget the slides",
    "Text me the address", "Please call me tomorrow", "",
])
def test_an_ordinary_reply_does_not_go_to_review(body):
    assert reads_like_opt_out(body) is None
