"""X-Twilio-Signature checks, with the twilio SDK's own `RequestValidator`.

The URL signed is the one Twilio was told to call: `PUBLIC_BASE_URL` + path + query,
taken from configuration and never from the request's Host header (behind a proxy or a
tunnel the Host we see is not the one Twilio used, and a Host an attacker chooses must not
decide what gets checked).
"""

from __future__ import annotations

import hmac
from typing import Any, Mapping

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"


def signed_url(public_base_url: str, path_qs: str) -> str:
    return public_base_url.rstrip("/") + path_qs


def is_valid_signature(auth_token: str, url: str, params: Mapping[str, Any], signature: str | None) -> bool:
    """True when `signature` is Twilio's signature of `url` + `params` with `auth_token`.

    `params` may be a multidict (repeated fields are signed value by value, as Twilio does).
    """
    if not signature or not auth_token:
        return False
    validator = RequestValidator(auth_token)
    # Twilio signs the URL it was given, which is `url`: one HMAC decides the common case.
    # Only a mismatch pays for the SDK's full check (it also tries the URL with and
    # without its port, since Twilio's signing of ports is inconsistent: two more HMACs).
    expected = validator.compute_signature(url, params)
    if hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return True
    return validator.validate(url, params, signature)
