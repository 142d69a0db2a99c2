"""The sweeper's part of "sends happen once": lost jobs and unknown outcomes."""

import time

from send_pipeline import queries
from send_pipeline.sweeps import LIST_CONCURRENCY, in_flight_limit_s, reconcile_stale_sends, requeue_stale_queued
from shared.sweeper import Sweeper
from tests.send_pipeline.conftest import set_sim, sim_view
from tests.support import wait_for
from webhooks.sweeps import replay_inbox

PHONE = "+12125551234"


async def queued_row(pool, firm, conv, body="Doors open at 6"):
    message_id = await pool.fetchval("SELECT nextval('messages_id_seq')")
    await queries.insert_queued_message(pool, message_id, firm.id, conv, body, "u1", 1)
    return message_id


async def make_sending(pool, message_id, claimed_ago_s, *, ambiguous_ago_s=None):
    await pool.execute(
        """UPDATE messages SET status = 'sending', attempts = 1,
                  claimed_at = now() - make_interval(secs => $2),
                  next_attempt_at = CASE WHEN $3::float8 IS NULL THEN NULL
                                         ELSE now() - make_interval(secs => $3) END
           WHERE id = $1""",
        message_id, float(claimed_ago_s), ambiguous_ago_s,
    )


async def test_a_queued_message_whose_job_was_lost_is_sent_after_a_sweep(worker, deps, firm, thread, pool, sim):
    message_id = await queued_row(pool, firm, await thread(PHONE))
    assert await requeue_stale_queued(deps) == 0  # not stale yet: its job may still be coming
    await pool.execute("UPDATE messages SET created_at = now() - interval '10 seconds' WHERE id = $1", message_id)
    assert await requeue_stale_queued(deps) == 1
    assert await requeue_stale_queued(deps) == 0  # once per STALE_AFTER_S, not every pass
    await wait_for(lambda: pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", message_id), what="sent")
    assert len((await sim_view(sim, PHONE))["messages"]) == 1


async def test_a_dead_workers_send_that_reached_twilio_is_adopted_without_a_second_send(deps, broker, firm, thread, pool, sim):
    message_id = await queued_row(pool, firm, await thread(PHONE))
    at_twilio = await deps.twilio.send_message(to=PHONE, from_=firm.number, body="Doors open at 6", status_callback=None)
    # Claimed just past the in-flight limit: its call (the message above) fell inside the
    # claim's window, which ends when the client's timeout does.
    await make_sending(pool, message_id, claimed_ago_s=in_flight_limit_s(deps.settings) + 2)
    assert await reconcile_stale_sends(deps) == {"adopted": 1}
    row = await pool.fetchrow("SELECT status, twilio_sid FROM messages WHERE id = $1", message_id)
    assert tuple(row) == ("sent", at_twilio.sid)
    assert len((await sim_view(sim))["attempts"]) == 1


async def test_a_dead_workers_send_that_never_reached_twilio_is_sent_once(worker, deps, firm, thread, pool, sim):
    message_id = await queued_row(pool, firm, await thread(PHONE))
    await make_sending(pool, message_id, claimed_ago_s=30)
    assert await reconcile_stale_sends(deps) == {"requeued": 1}
    await wait_for(lambda: pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", message_id), what="sent")
    assert len((await sim_view(sim, PHONE))["messages"]) == 1


async def test_a_send_that_may_still_be_in_flight_is_not_touched(deps, broker, firm, thread, pool, sim):
    message_id = await queued_row(pool, firm, await thread(PHONE))
    await make_sending(pool, message_id, claimed_ago_s=in_flight_limit_s(deps.settings) - 1)
    assert await reconcile_stale_sends(deps) == 0
    assert await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id) == "sending"


async def test_an_ambiguous_send_is_reconciled_stale_after_s_after_its_answer(deps, broker, firm, thread, pool, sim):
    message_id = await queued_row(pool, firm, await thread(PHONE))
    await deps.twilio.send_message(to=PHONE, from_=firm.number, body="Doors open at 6", status_callback=None)
    await make_sending(pool, message_id, claimed_ago_s=3, ambiguous_ago_s=-5)  # its wait is not over
    assert await reconcile_stale_sends(deps) == 0
    await make_sending(pool, message_id, claimed_ago_s=3, ambiguous_ago_s=0.1)
    assert await reconcile_stale_sends(deps) == {"adopted": 1}


async def test_a_message_already_recorded_is_never_adopted_twice(worker, deps, firm, thread, pool, sim):
    conv = await thread(PHONE)
    earlier = await queued_row(pool, firm, conv, "Same words")
    first = await deps.twilio.send_message(to=PHONE, from_=firm.number, body="Same words", status_callback=None)
    await pool.execute("UPDATE messages SET status = 'sent', twilio_sid = $2 WHERE id = $1", earlier, first.sid)
    later = await queued_row(pool, firm, conv, "Same words")
    await make_sending(pool, later, claimed_ago_s=30)
    assert await reconcile_stale_sends(deps) == {"requeued": 1}
    sid = await wait_for(lambda: pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", later), what="sent")
    assert sid != first.sid
    assert len((await sim_view(sim, PHONE))["messages"]) == 2


async def test_a_sending_row_that_has_a_sid_is_settled_without_asking_twilio(deps, broker, firm, thread, pool, sim):
    message_id = await queued_row(pool, firm, await thread(PHONE))
    await make_sending(pool, message_id, claimed_ago_s=30)
    await pool.execute("UPDATE messages SET twilio_sid = 'SMfromacallback' WHERE id = $1", message_id)
    assert await reconcile_stale_sends(deps) == {"settled": 1}
    assert await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id) == "sent"
    assert (await sim_view(sim))["attempts"] == []


async def test_a_send_twilio_never_confirms_is_given_up_after_many_attempts(deps, broker, firm, thread, pool, sim):
    from send_pipeline.sending import MAX_ATTEMPTS

    message_id = await queued_row(pool, firm, await thread(PHONE))
    await make_sending(pool, message_id, claimed_ago_s=30)
    await pool.execute("UPDATE messages SET attempts = $2 WHERE id = $1", message_id, MAX_ATTEMPTS)
    assert await reconcile_stale_sends(deps) == {"failed": 1}
    row = await pool.fetchrow("SELECT status, error_message FROM messages WHERE id = $1", message_id)
    assert row["status"] == "failed" and "gave up" in row["error_message"]


async def test_a_later_send_of_the_same_text_to_the_same_phone_is_not_adopted(deps, broker, firm, thread, pool, sim):
    message_id = await queued_row(pool, firm, await thread(PHONE), "See you there")
    await make_sending(pool, message_id, claimed_ago_s=60)  # its call ended long before this one
    later = await deps.twilio.send_message(to=PHONE, from_=firm.number, body="See you there", status_callback=None)
    assert await reconcile_stale_sends(deps) == {"requeued": 1}
    row = await pool.fetchrow("SELECT status, twilio_sid FROM messages WHERE id = $1", message_id)
    assert row["twilio_sid"] != later.sid


async def test_a_stored_status_callback_gives_its_sid_when_twilios_list_lags(deps, broker, firm, thread, pool, sim):
    message_id = await queued_row(pool, firm, await thread(PHONE))
    await make_sending(pool, message_id, claimed_ago_s=30)
    # Twilio has it (its callback, naming the sid, is stored and not yet applied); its list
    # does not show it yet.
    await pool.execute(
        """INSERT INTO twilio_inbox (kind, message_sid, twilio_status, message_id, params)
           VALUES ('status', 'SMseenbycallback', 'sent', $1, $2)""",
        message_id, {"MessageSid": "SMseenbycallback", "MessageStatus": "sent"},
    )
    assert await reconcile_stale_sends(deps) == {"adopted": 1}
    row = await pool.fetchrow("SELECT status, twilio_sid FROM messages WHERE id = $1", message_id)
    assert tuple(row) == ("sent", "SMseenbycallback")
    assert (await sim_view(sim))["attempts"] == []


async def test_twilio_list_calls_for_many_stale_sends_run_concurrently_up_to_the_cap(deps, broker, firm, thread,
                                                                                      pool, sim):
    phones = [f"+1212555{3001 + n}" for n in range(LIST_CONCURRENCY + 1)]
    for phone in phones:
        await make_sending(pool, await queued_row(pool, firm, await thread(phone)), claimed_ago_s=30)
    await set_sim(sim, list_slow_s=1.0)
    try:
        started = time.monotonic()
        assert await reconcile_stale_sends(deps) == {"requeued": len(phones)}
        elapsed = time.monotonic() - started
    finally:
        await set_sim(sim, list_slow_s=0)
    # One after another: 9 s. All at once: 1 s. At most LIST_CONCURRENCY at once: two rounds.
    assert 2.0 <= elapsed < LIST_CONCURRENCY / 2 + 1, f"{len(phones)} lists of 1 s each took {elapsed:.1f} s"


async def test_a_slow_twilio_list_does_not_hold_up_the_inbox_replay(deps, broker, firm, thread, pool, sim):
    message_id = await queued_row(pool, firm, await thread(PHONE))
    await make_sending(pool, message_id, claimed_ago_s=30)
    await pool.execute(
        """INSERT INTO twilio_inbox (kind, message_sid, twilio_status, params, received_at)
           VALUES ('inbound', 'SMwaiting', 'received', $1, now() - interval '1 minute')""",
        {"MessageSid": "SMwaiting", "From": PHONE, "To": firm.number, "Body": "Hi", "SmsStatus": "received"},
    )
    sweeper = Sweeper(deps, {"reconcile": reconcile_stale_sends, "replay": replay_inbox}, task_budget_s=1.0)
    await set_sim(sim, list_slow_s=5.0)
    try:
        started = time.monotonic()
        summary = await sweeper.run_pass()
        elapsed = time.monotonic() - started
    finally:
        await set_sim(sim, list_slow_s=0)
    assert summary == {"reconcile": {"error": "over_budget"}, "replay": 1}
    assert elapsed < 4, f"the pass took {elapsed:.1f} s"
    # What the cut pass did not get to is still due: the next pass resolves it.
    assert (await sweeper.run_pass())["reconcile"] == {"requeued": 1}
