"""The sweeper replays inbox rows whose job was lost, and leaves young ones to their job."""

from tests.support import wait_for
from webhooks.sweeps import SWEEPS, replay_inbox


async def _unqueued_row(pool, kind: str, sid: str, age_s: float, firm_number: str) -> int:
    """An inbox row as the route leaves it when the broker was down: stored, never enqueued."""
    params = {"MessageSid": sid, "From": "+16465551234", "To": firm_number, "Body": "Thanks!", "SmsStatus": "received"}
    return await pool.fetchval(
        """INSERT INTO twilio_inbox (kind, message_sid, twilio_status, params, received_at)
           VALUES ($1, $2, 'received', $3, clock_timestamp() - make_interval(secs => $4)) RETURNING id""",
        kind, sid, params, float(age_s),
    )


async def test_the_sweep_task_is_registered():
    assert SWEEPS["replay_inbox"] is replay_inbox


async def test_a_row_younger_than_stale_after_is_left_to_its_job(deps, pool, firm):
    await _unqueued_row(pool, "inbound", "SMyoung", 0, firm.number)
    assert await replay_inbox(deps) == 0


async def test_a_stale_unprocessed_row_is_enqueued_again_and_a_worker_applies_it(deps, pool, firm, webhook_worker):
    inbox_id = await _unqueued_row(pool, "inbound", "SMlost", deps.settings.stale_after_s + 1, firm.number)
    assert await replay_inbox(deps) == 1
    outcome = await wait_for(lambda: pool.fetchval("SELECT outcome FROM twilio_inbox WHERE id = $1", inbox_id),
                             timeout=10, what="the worker to apply the replayed row")
    assert outcome == "filed"
    assert await pool.fetchval("SELECT body FROM messages WHERE twilio_sid = 'SMlost'") == "Thanks!"
    assert await replay_inbox(deps) == 0  # processed rows are never replayed
