"""dramatiq actors of this package: thin shells that hand ids to the service."""

from send_pipeline import sending
from shared import deps
from shared.broker import actor, enqueue
from shared.errors import PermanentError


@actor(queue_name="send", max_retries=8, throws=(PermanentError,))
async def send_message(message_id: int) -> None:
    """Send one portal message through Twilio, at most once (see sending.py); come back
    later when the attempt says so (Twilio never received it, or it is not yet due)."""
    outcome = await sending.send_message(deps.current(), message_id)
    if outcome.retry_in_ms is not None:
        await enqueue(send_message, message_id, delay_ms=outcome.retry_in_ms)
