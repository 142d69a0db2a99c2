"""The error hierarchy. One root, `AppError`; everything typed and carrying fields.

- `PermanentError`: retrying cannot help (bad input, Twilio 4xx). Actors list it in
  `throws=` so dramatiq does not retry it.
- `TransientError`: may succeed later (timeouts, 5xx, 429, a service down).
- `HttpError`: what a route answers, `{"error": text, "code": code}` with `status`.
"""

from __future__ import annotations


class AppError(Exception):
    code = "error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(AppError):
    """A missing or malformed environment variable."""

    code = "config"

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable
        self.problem = problem


class PermanentError(AppError):
    code = "permanent"


class TransientError(AppError):
    code = "transient"


class NotFound(PermanentError):
    code = "not_found"


class HttpError(AppError):
    """An error a route answers as JSON `{"error": message, "code": code}`."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: object) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.headers = headers or {}
        self.extra = extra


def not_found(what: str = "resource") -> HttpError:
    return HttpError(404, "not_found", f"No such {what}.")
