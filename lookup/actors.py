"""dramatiq actors of this package: thin shells that hand ids to the service.

Retries: dramatiq's actor options are fixed at import, but the backoff is configuration
(`RETRY_MIN_BACKOFF_MS`, `RETRY_MAX_BACKOFF_MS`). So a transient failure (Twilio did
not take or did not answer the lookup; Redis or PostgreSQL unreachable) is re-raised as
`dramatiq.Retry` with the delay computed here from the worker's settings and the
message's retry count: dramatiq's Retries middleware re-enqueues it after that delay,
up to `LOOKUP_MAX_RETRIES`. Permanent failures (`PermanentError`: any other Twilio 4xx,
an auth failure included) are in `throws=` and are not retried. intake's validate_lead
retries the same way (`backoff_from_settings`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import dramatiq
from dramatiq.common import compute_backoff
from dramatiq.middleware import CurrentMessage

from lookup import batch, service
from shared.broker import enqueue
from shared import deps
from shared.broker import actor
from shared.config import Settings
from shared.errors import PermanentError, TransientError
from shared.web import UNAVAILABLE

# With the defaults (1 s doubling, jittered, to a 300 s cap) 12 retries span 20 to 40 minutes.
LOOKUP_MAX_RETRIES = 12

RETRYABLE = (TransientError, *UNAVAILABLE)


def retry_delay_ms(settings: Settings, retries: int) -> int:
    """Exponential backoff with jitter between the configured bounds."""
    _, delay = compute_backoff(retries, factor=settings.retry_min_backoff_ms,
                               max_backoff=settings.retry_max_backoff_ms)
    return max(settings.retry_min_backoff_ms, int(delay))


def _retries_so_far() -> int:
    message = CurrentMessage.get_current_message()
    return int(message.options.get("retries", 0)) if message is not None else 0


@contextmanager
def backoff_from_settings(settings: Settings) -> Iterator[None]:
    """Re-raise a transient failure as `dramatiq.Retry` after the configured backoff;
    let permanent ones (in the actor's `throws=`) and anything else through."""
    try:
        yield
    except PermanentError:
        raise
    except RETRYABLE as exc:
        raise dramatiq.Retry(f"{type(exc).__name__}: {exc}",
                             delay=retry_delay_ms(settings, _retries_so_far())) from exc


@actor(queue_name="lookup", max_retries=LOOKUP_MAX_RETRIES, throws=(PermanentError,))
async def lookup_line_type(phone_e164: str, force: bool = False) -> None:
    d = deps.current()
    with backoff_from_settings(d.settings):
        await service.lookup_line_type(d, phone_e164, force=force)


@actor(queue_name="lookup", max_retries=LOOKUP_MAX_RETRIES, throws=(PermanentError,))
async def lookup_line_types(phones: list[str]) -> None:
    """Intake's batches (lookup/batch.py): up to LOOKUP_CONCURRENCY lookups at once; a phone
    that failed transiently is retried alone, with backoff, by its own `lookup_line_type` job."""
    d = deps.current()
    with backoff_from_settings(d.settings):  # database or Redis unreachable: the whole batch again
        done = await batch.lookup_line_types(d, phones)
    for phone in done.retry:
        await enqueue(lookup_line_type, phone)
