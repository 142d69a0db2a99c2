"""The sweeper replays inbox rows whose job was lost, and leaves young ones to their job."""

from shared.app import sweep_tasks
from tests.support import wait_for
from webhooks.sweeps import SWEEPS, prune_inbox, replay_inbox


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


async def test_stale_rows_are_enqueued_once_per_stale_after_not_on_every_pass(deps, broker, pool, firm):
    for n in range(3):
        await _unqueued_row(pool, "inbound", f"SMrepeat{n}", deps.settings.stale_after_s + 5, firm.number)
    jobs = [await replay_inbox(deps) for _ in range(4)]
    assert sum(jobs) == 3, jobs


async def test_a_row_still_unprocessed_stale_after_s_after_its_replay_is_enqueued_again(deps, broker, pool, firm):
    stale = float(deps.settings.stale_after_s)
    due = await _unqueued_row(pool, "inbound", "SMreplayedlongago", stale + 60, firm.number)
    recent = await _unqueued_row(pool, "inbound", "SMreplayedjustnow", stale + 60, firm.number)
    await pool.execute("UPDATE twilio_inbox SET requeued_at = now() - make_interval(secs => $2) WHERE id = $1",
                       due, stale + 1)
    await pool.execute("UPDATE twilio_inbox SET requeued_at = now() WHERE id = $1", recent)
    assert await replay_inbox(deps) == 1
    marked = await pool.fetchval("SELECT requeued_at > now() - interval '1 second' FROM twilio_inbox WHERE id = $1",
                                 due)
    assert marked


async def test_newer_lost_rows_are_reached_when_older_ones_fill_a_batch(deps, broker, pool, firm):
    stale = deps.settings.stale_after_s
    older = [await _unqueued_row(pool, "inbound", f"SMold{n}", stale + 60 - n, firm.number) for n in range(3)]
    newer = [await _unqueued_row(pool, "inbound", f"SMnew{n}", stale + 5 - n, firm.number) for n in range(2)]
    assert await replay_inbox(deps, batch=3) == 3
    assert await replay_inbox(deps, batch=3) == 2
    marked = await pool.fetch("SELECT id FROM twilio_inbox WHERE requeued_at IS NOT NULL ORDER BY id")
    assert [r["id"] for r in marked] == sorted(older + newer)


async def _aged_row(pool, sid: str, age_days: float, *, processed: bool) -> int:
    return await pool.fetchval(
        """INSERT INTO twilio_inbox (kind, message_sid, twilio_status, params, received_at, processed_at, outcome)
           VALUES ('status', $1, 'delivered', '{}'::jsonb, now() - make_interval(days => $2),
                   CASE WHEN $3 THEN now() - make_interval(days => $2) END, CASE WHEN $3 THEN 'recorded' END)
           RETURNING id""",
        sid, float(age_days), processed,
    )


async def test_processed_inbox_rows_past_the_retention_are_deleted_in_small_batches(deps, pool):
    days = deps.settings.inbox_retention_days
    assert days == 30
    old = [await _aged_row(pool, f"SMold{n}", days + 1 + n, processed=True) for n in range(5)]
    kept = [await _aged_row(pool, "SMrecent", days - 1, processed=True),
            await _aged_row(pool, "SMnotapplied", days + 10, processed=False)]
    assert await prune_inbox(deps, batch=2, batches=2) == 4  # two batches of two, this pass
    assert await prune_inbox(deps, batch=2, batches=2) == 1
    assert await prune_inbox(deps, batch=2, batches=2) == 0
    left = {r["id"] for r in await pool.fetch("SELECT id FROM twilio_inbox")}
    assert left == set(kept) and not left & set(old)


async def test_sweeper_passes_older_than_a_day_are_deleted(deps, pool):
    from shared.sweeper import prune_passes

    for hours in (30, 26, 23, 1):
        await pool.execute(
            """INSERT INTO sweeper_passes (host_pid, started_at, finished_at)
               VALUES ('test', now() - make_interval(hours => $1), now() - make_interval(hours => $1))""",
            hours,
        )
    assert await prune_passes(deps, batch=1) == 2
    ages = await pool.fetch("SELECT extract(epoch FROM now() - started_at) / 3600 AS h FROM sweeper_passes")
    assert sorted(round(r["h"]) for r in ages) == [1, 23]


def test_the_sweeper_runs_both_retention_tasks():
    tasks = sweep_tasks()
    assert {"webhooks.prune_inbox", "sweeper.prune_passes"} <= set(tasks)
