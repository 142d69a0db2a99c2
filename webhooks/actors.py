"""dramatiq actors of this package: thin shells that hand inbox ids to the service.

Both are idempotent (an inbox row is applied once), so dramatiq's retries, the sweeper's
re-enqueues and Twilio's replays are all harmless.
"""

from shared import deps
from shared.broker import actor
from shared.errors import PermanentError
from webhooks import service


@actor(queue_name="status", max_retries=8, throws=(PermanentError,))
async def apply_status(inbox_id: int) -> None:
    await service.apply_status(deps.current(), inbox_id)


@actor(queue_name="inbound", max_retries=8, throws=(PermanentError,))
async def handle_inbound(inbox_id: int) -> None:
    await service.handle_inbound(deps.current(), inbox_id)
