"""dramatiq actors of this package: thin shells that hand ids to the service."""

from __future__ import annotations

import structlog

from intake import erasure, service
from lookup.actors import backoff_from_settings
from shared import deps
from shared.broker import actor, enqueue


@actor(queue_name="intake", max_retries=8)
async def validate_lead(lead_id: int, *more_lead_ids: int) -> None:
    """One lead, or a batch: the web coalesces the signups it accepts together
    (intake/batching.py), and the sweeper re-enqueues stale ones in batches too."""
    d = deps.current()
    structlog.contextvars.bind_contextvars(lead_id=lead_id)
    try:
        with backoff_from_settings(d.settings):  # database or broker unreachable
            if more_lead_ids:
                await service.validate_leads(d, [lead_id, *more_lead_ids])
            else:
                await service.validate_lead(d, lead_id)
    finally:
        structlog.contextvars.unbind_contextvars("lead_id")


@actor(queue_name="intake", max_retries=30)
async def erase_person(erasure_id: int) -> None:
    """Erase a person (intake/erasure.py), then a job per Twilio record to delete."""
    d = deps.current()
    with structlog.contextvars.bound_contextvars(erasure_id=erasure_id):
        with backoff_from_settings(d.settings):  # a send in flight, or the database away
            sids = await erasure.erase_person(d, erasure_id)
        for sid in sids:
            await enqueue(delete_erased_message, sid)


@actor(queue_name="intake", max_retries=30)
async def delete_erased_message(message_sid: str) -> None:
    """Messages DELETE for one erased message, retried with backoff until Twilio has it done."""
    d = deps.current()
    with structlog.contextvars.bound_contextvars(message_sid=message_sid):
        with backoff_from_settings(d.settings):
            await erasure.delete_twilio_record(d, message_sid)
