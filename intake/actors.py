"""dramatiq actors of this package: thin shells that hand ids to the service."""

from __future__ import annotations

import structlog

from intake import service
from lookup.actors import backoff_from_settings
from shared import deps
from shared.broker import actor


@actor(queue_name="intake", max_retries=8)
async def validate_lead(lead_id: int) -> None:
    d = deps.current()
    structlog.contextvars.bind_contextvars(lead_id=lead_id)
    try:
        with backoff_from_settings(d.settings):  # database or broker unreachable
            await service.validate_lead(d, lead_id)
    finally:
        structlog.contextvars.unbind_contextvars("lead_id")
