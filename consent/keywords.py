"""What an inbound text means for consent: a keyword, a possible opt-out, or a reply.

Pure functions, no I/O. Two different questions with two different bars:

- `classify_keyword`: the carrier-standard keywords (docs/webhooks.md). The WHOLE body counts,
  trimmed, case-insensitive, trailing punctuation ignored, so "Stop." opts out and
  "We have got to STOP this bill" does not. Twilio answers these keywords itself; the
  webhook applies the state change in the same transaction as the inbox row.
- `reads_like_opt_out`: a reply that is not a keyword yet reads like a request to stop
  ("please stop texting me", "wrong number"). It only pauses sends until staff review it,
  so a false positive costs a click; still, the table below is kept conservative: each
  pattern names who or what to stop contacting, or is a bare stop request.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Mapping

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

_KINDS = (("opt_out", OPT_OUT_WORDS), ("opt_in", OPT_IN_WORDS), ("help", HELP_WORDS))


@dataclass(frozen=True)
class Keyword:
    kind: str  # "opt_out" | "opt_in" | "help"
    word: str  # lower case, as recorded in the consent source `keyword:<word>`

    @property
    def source(self) -> str:
        return f"keyword:{self.word}"


def _strip_trailing_punctuation(text: str) -> str:
    end = len(text)
    while end and (unicodedata.category(text[end - 1]).startswith("P") or text[end - 1].isspace()):
        end -= 1
    return text[:end]


def keyword_text(body: str) -> str:
    """The body as a keyword candidate: trimmed, trailing punctuation off, spaces single, upper."""
    text = _strip_trailing_punctuation((body or "").strip())
    return " ".join(text.split()).upper()


def classify_keyword(body: str | None) -> Keyword | None:
    """The consent keyword the whole body is, or None for any other text."""
    text = keyword_text(body or "")
    for kind, words in _KINDS:
        if text in words:
            return Keyword(kind, text.lower())
    return None


# Twilio Advanced Opt-Out's `OptOutType` on an inbound text -> our keyword kind.
OPT_OUT_TYPES = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}
MAX_WORD = 40


def advanced_opt_out_type(params: Mapping[str, str]) -> str | None:
    """The inbound's `OptOutType` (STOP, START, HELP) when Twilio sent one we know."""
    value = (params.get("OptOutType") or "").strip().upper()
    return value if value in OPT_OUT_TYPES else None


def inbound_keyword(params: Mapping[str, str]) -> Keyword | None:
    """What an inbound text means for consent. Advanced Opt-Out's `OptOutType`, when
    present, decides over our keyword list (the firm's custom or localised keywords):
    the word recorded is the body as the lead typed it (lower case), or the type."""
    opt_out_type = advanced_opt_out_type(params)
    if opt_out_type is None:
        return classify_keyword(params.get("Body"))
    word = keyword_text(params.get("Body") or "").lower()[:MAX_WORD] or opt_out_type.lower()
    return Keyword(OPT_OUT_TYPES[opt_out_type], word)


def default_help_text(firm_name: str) -> str:
    """The HELP/INFO reply of a firm that set none: it names the firm and says how to stop."""
    return f"{firm_name}: reply to this number to reach us. Reply STOP to opt out."


# ---- "reads like an opt-out" (review, not a keyword) ------------------------------------

_ME = r"(?:me|us|this (?:number|phone)|my (?:number|phone|cell))"
_CONTACT = r"(?:text|txt|message|msg|sms|contact|call|email|bother)"
_CONTACTING = r"(?:texting|txting|messaging|msging|contacting|calling|bothering|spamming)"
_POLITE = r"(?:please|pls|plz|now|it|already|thanks|thank you|thx|ok|okay|asap)"

# (rule name, pattern) in the normalised text (lower case, plain apostrophes, single
# spaces, punctuation other than apostrophes turned into spaces). Retune here.
REVIEW_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("stop_contacting", rf"\bstop {_CONTACTING}\b"),
        ("stop_sending", r"\bstop sending (?:me|texts|messages|these|this)\b"),
        ("do_not_contact", rf"\b(?:don't|dont|do not|never) (?:ever )?{_CONTACT} {_ME}\b"),
        ("remove_me", rf"\b(?:remove|delete) {_ME}\b"),
        ("take_me_off", r"\btake (?:me|my (?:number|name)) off\b"),
        ("unsubscribe_me", r"\b(?:unsubscribe|opt) me\b|\bopt me out\b"),
        ("wrong_number", r"\bwrong (?:number|person|#)\b"),
        ("leave_me_alone", r"\bleave me alone\b"),
        ("no_more_texts", r"\bno more (?:texts|text messages|messages|msgs)\b"),
        ("lose_my_number", r"\b(?:lose|delete|remove) my (?:number|phone number|info)\b"),
        # a bare stop request with only politeness around it: "please stop", "stop it now"
        ("bare_stop", rf"^(?:{_POLITE} )*(?:stop|unsubscribe|cancel)(?: (?:{_POLITE}|stop))*$"),
    )
)


def review_text(body: str) -> str:
    text = (body or "").lower().replace("\u2019", "'").replace("\u2018", "'")
    text = "".join(ch if ch.isalnum() or ch in "'#" else " " for ch in text)
    return " ".join(text.split())


def reads_like_opt_out(body: str | None) -> str | None:
    """The name of the first review rule the body matches, or None for an ordinary reply.

    Keywords are not this function's business: callers ask `classify_keyword` first.
    """
    text = review_text(body or "")
    if not text:
        return None
    for name, pattern in REVIEW_RULES:
        if pattern.search(text):
            return name
    return None
