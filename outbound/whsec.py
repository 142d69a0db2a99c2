"""Endpoint secrets: `whsec_` + base64 of 24 random bytes, shown once, kept encrypted.

At rest a secret is Fernet-encrypted with `CREDENTIALS_KEY` (as firms/credentials.py
keeps Twilio subaccount tokens) and stored as `fernet:<token>`; without that key it is
stored as `plain:<secret>` (the README says so: set the key in production). A secret is
never logged, and never returned but by the create and rotate calls.
"""

from __future__ import annotations

import base64
import secrets as _random

from cryptography.fernet import Fernet, InvalidToken

from shared.errors import AppError

PREFIX = "whsec_"


class SecretUnavailable(AppError):
    code = "webhook_secret_unavailable"


def new_secret() -> str:
    return PREFIX + base64.b64encode(_random.token_bytes(24)).decode("ascii")


def seal(key: str | None, secret: str) -> str:
    if not key:
        return "plain:" + secret
    return "fernet:" + Fernet(key.encode("ascii")).encrypt(secret.encode("ascii")).decode("ascii")


def unseal(key: str | None, stored: str) -> str:
    kind, _, body = stored.partition(":")
    if kind == "plain":
        return body
    if kind == "fernet" and key:
        try:
            return Fernet(key.encode("ascii")).decrypt(body.encode("ascii")).decode("ascii")
        except InvalidToken:
            pass
    raise SecretUnavailable("a webhook endpoint's secret cannot be decrypted with this CREDENTIALS_KEY")
