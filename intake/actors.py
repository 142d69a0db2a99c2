"""dramatiq actors of this package: thin shells that hand ids to the service."""

from __future__ import annotations

import structlog

from intake import service
from shared import deps
from shared.broker import actor


@actor(queue_name="intake", max_retries=8)
async def validate_lead(lead_id: int) -> None:
    structlog.contextvars.bind_contextvars(lead_id=lead_id)
    try:
        await service.validate_lead(deps.current(), lead_id)
    finally:
        structlog.contextvars.unbind_contextvars("lead_id")
