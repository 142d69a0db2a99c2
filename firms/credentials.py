"""Per-firm Twilio subaccount tokens, encrypted at rest with `CREDENTIALS_KEY` (Fernet).

Only the ciphertext is stored; a token is decrypted where a request is made or a
signature checked, and never logged, returned by the API or shown on /ops. Without
`CREDENTIALS_KEY` a subaccount cannot be set (nor used).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from shared.errors import AppError


class CredentialsUnavailable(AppError):
    code = "credentials_unavailable"


def _fernet(key: str | None) -> Fernet:
    if not key:
        raise CredentialsUnavailable("CREDENTIALS_KEY is not set: per-firm Twilio subaccounts are refused")
    return Fernet(key.encode("ascii"))


def encrypt_token(key: str | None, token: str) -> str:
    return _fernet(key).encrypt(token.encode("utf-8")).decode("ascii")


def decrypt_token(key: str | None, ciphertext: str) -> str:
    try:
        return _fernet(key).decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise CredentialsUnavailable("a firm's Twilio token cannot be decrypted with this CREDENTIALS_KEY") from None
