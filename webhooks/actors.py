"""dramatiq actors of this package: thin shells that hand inbox ids to the service.

`apply_status` (one row) is kept for jobs enqueued before `apply_status_batch` existed.

Both are idempotent (an inbox row is applied once), so dramatiq's retries, the sweeper's
re-enqueues and Twilio's replays are all harmless.
"""

from shared import deps
from shared.broker import actor
from shared.errors import PermanentError
from webhooks import service, status_batch


@actor(queue_name="status", max_retries=8, throws=(PermanentError,))
async def apply_status(inbox_id: int) -> None:
    await service.apply_status(deps.current(), inbox_id)


@actor(queue_name="status", max_retries=8, throws=(PermanentError,))
async def apply_status_batch(inbox_ids: list[int]) -> None:
    """The web's group commits and the sweeper's replays: many rows, one transaction."""
    await status_batch.apply_status_batch(deps.current(), inbox_ids)


@actor(queue_name="inbound", max_retries=8, throws=(PermanentError,))
async def handle_inbound(inbox_id: int) -> None:
    await service.handle_inbound(deps.current(), inbox_id)
