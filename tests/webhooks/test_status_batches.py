"""Status callbacks arriving together are stored in one group commit, each answered after
it, applied once each; a batch that cannot reach PostgreSQL answers 503 to every request."""

import asyncio

import dramatiq

from shared import async_enqueue
from devtools.twilio_sim.signing import status_params
from tests.support import wait_for
from tests.webhooks.support import add_outbound, app_with_cuttable_database, post_signed, send_status

PHONE = "+16465551234"


async def test_concurrent_callbacks_are_each_stored_once_answered_204_and_applied_by_the_worker(
        http, settings, pool, firm, webhook_worker):
    ids = [await add_outbound(pool, firm.id, f"+1646555{2000 + i:04d}", sid=f"SMbatch{i}", status="sent")
           for i in range(40)]
    posts = [send_status(http, settings, message_id=m, sid=f"SMbatch{i}", status="delivered")
             for i, m in enumerate(ids)]
    # replays of the first ten, in the same burst (same batch or the next one)
    posts += [send_status(http, settings, message_id=m, sid=f"SMbatch{i}", status="delivered")
              for i, m in enumerate(ids[:10])]
    answers = await asyncio.gather(*posts)
    assert [a.status for a in answers] == [204] * 50
    rows = await pool.fetch("SELECT message_id FROM twilio_inbox WHERE message_sid LIKE 'SMbatch%'")
    assert sorted(r["message_id"] for r in rows) == sorted(ids)

    async def all_delivered():
        n = await pool.fetchval("SELECT count(*) FROM messages WHERE id = ANY($1) AND status = 'delivered'", ids)
        return n == len(ids) or None

    await wait_for(all_delivered, timeout=20, what="every message delivered by the worker")
    outcomes = await pool.fetch("SELECT outcome FROM twilio_inbox WHERE message_sid LIKE 'SMbatch%'")
    assert {o["outcome"] for o in outcomes} == {"status:delivered"}


async def test_a_batch_answers_503_to_every_callback_when_postgresql_is_down(settings, services, deps, pool,
                                                                          firm, broker):
    import aiohttp

    async with app_with_cuttable_database(settings, services, deps, broker) as (down_settings, proxy):
        await proxy.cut()
        async with aiohttp.ClientSession(base_url=down_settings.public_base_url) as session:
            answers = await asyncio.gather(*(
                post_signed(session, down_settings, f"/twilio/status?m={100 + i}",
                            status_params(account_sid=settings.twilio_account_sid, sid=f"SMdown{i}", to=PHONE,
                                          from_=firm.number, status="delivered"))
                for i in range(12)))
        assert [a.status for a in answers] == [503] * 12
        assert all('"code": "unavailable"' in a.text for a in answers)
        assert await pool.fetchval("SELECT count(*) FROM twilio_inbox WHERE message_sid LIKE 'SMdown%'") == 0


def _unconsumed_actor(broker):
    """An actor on a queue no worker of the session consumes, to read its messages back."""
    async def async_enqueue_probe(n: int) -> None:
        return None

    if "async_enqueue_probe" in broker.actors:
        return broker.get_actor("async_enqueue_probe")
    return dramatiq.actor(async_enqueue_probe, broker=broker, queue_name="test_async_enqueue")


async def test_an_enqueue_on_the_loop_stores_the_message_dramatiq_itself_would(deps, broker):
    probe = _unconsumed_actor(broker)
    assert async_enqueue.supports(broker)
    sent = await async_enqueue.enqueue(probe, 12345)
    raw = await deps.redis.hget(f"{broker.namespace}:test_async_enqueue.msgs", sent.options["redis_message_id"])
    queued = await deps.redis.lrange(f"{broker.namespace}:test_async_enqueue", 0, -1)
    assert raw == sent.encode()
    assert queued == [sent.options["redis_message_id"].encode()]
    decoded = dramatiq.Message.decode(raw)
    assert (decoded.queue_name, decoded.actor_name, decoded.args) == ("test_async_enqueue", "async_enqueue_probe",
                                                                      (12345,))
    # the same fields a synchronous send writes
    reference = probe.send(12345)
    assert set(reference.asdict()) == set(decoded.asdict())
    assert set(reference.options) == set(decoded.options)
    delayed = await async_enqueue.enqueue(probe, 1, delay_ms=60_000)
    assert delayed.queue_name == "test_async_enqueue.DQ" and "eta" in delayed.options
    assert await deps.redis.lrange(f"{broker.namespace}:test_async_enqueue.DQ", 0, -1) == [
        delayed.options["redis_message_id"].encode()]


async def test_a_batch_enqueue_is_one_message_per_job_in_order(deps, broker):
    probe = _unconsumed_actor(broker)
    sent = await async_enqueue.enqueue_many(broker, [(probe, (i,)) for i in (7, 8, 9)])
    queued = await deps.redis.lrange(f"{broker.namespace}:test_async_enqueue", 0, -1)
    assert [m.args for m in sent] == [(7,), (8,), (9,)]
    assert queued[-3:] == [m.options["redis_message_id"].encode() for m in sent]


async def test_a_callback_replayed_after_it_was_applied_is_answered_204_and_not_applied_again(
        http, settings, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid="SMdone", status="sent")
    assert (await send_status(http, settings, message_id=message_id, sid="SMdone", status="delivered")).status == 204
    await pool.execute("UPDATE twilio_inbox SET processed_at = now(), outcome = 'status:delivered' "
                       "WHERE message_sid = 'SMdone'")
    answers = await asyncio.gather(*(send_status(http, settings, message_id=message_id, sid="SMdone",
                                                 status="delivered") for _ in range(5)))
    assert [a.status for a in answers] == [204] * 5
    assert await pool.fetchval("SELECT count(*) FROM twilio_inbox WHERE message_sid = 'SMdone'") == 1


async def test_a_callback_arriving_as_the_last_writer_finishes_is_still_stored(deps, broker, pool, firm):
    from webhooks.batcher import StatusBatcher

    batcher = StatusBatcher(max_writers=1)

    def params(n: int) -> dict:
        return status_params(account_sid=deps.settings.twilio_account_sid, sid=f"SMtick{n}", to=PHONE,
                             from_=firm.number, status="delivered")

    async def one_after_another() -> None:
        # The second request comes in the very loop tick the first one's answer (and the
        # end of the only writer) does.
        await batcher.store(deps, params(1), None)
        await batcher.store(deps, params(2), None)

    await asyncio.wait_for(one_after_another(), 5)
    assert await pool.fetchval("SELECT count(*) FROM twilio_inbox WHERE message_sid LIKE 'SMtick%'") == 2


async def test_one_batch_gives_each_callback_its_own_answer_by_the_account_that_signed_it(
        deps, broker, pool, firm, make_firm):
    """The account check runs once for the whole batch, and decides what one check per
    request would: ours and rightly signed is stored, a message of another account's firm
    is refused (nothing stored), an erased message's callback is answered and not stored,
    and one naming nothing of ours is stored unmatched."""
    import structlog

    from shared.errors import HttpError
    from webhooks.batcher import StatusBatcher

    main, sub = deps.settings.twilio_account_sid, "AC" + "5" * 32
    other = await make_firm("Sub Firm", "+16465550777")
    await pool.execute("UPDATE firms SET twilio_account_sid = $1, twilio_auth_token_enc = 'not read here' WHERE id = $2",
                       sub, other.id)
    mine = await add_outbound(pool, firm.id, PHONE, sid="SMmix-mine", status="sent")
    theirs = await add_outbound(pool, other.id, "+16465551235", sid="SMmix-theirs", status="sent")
    erasure = await pool.fetchval("INSERT INTO erasures (firm_id, requested_by) VALUES ($1, 'test') RETURNING id", firm.id)
    await pool.execute("INSERT INTO erased_messages (message_sid, erasure_id, firm_id) VALUES ('SMmix-erased', $1, $2)",
                       erasure, firm.id)

    def params(sid: str, account: str) -> dict:
        return status_params(account_sid=account, sid=sid, to=PHONE, from_=firm.number, status="delivered")

    requests = [  # (params, ?m=, what the answer must be)
        (params("SMmix-mine", main), mine, "stored"),
        (params("SMmix-theirs", main), theirs, 403),                 # by our id: the other firm's account
        (params("SMmix-theirs", sub), None, "stored"),               # by its sid alone, its own account
        (params("SMmix-mine", sub), None, 403),                      # by its sid alone, the wrong account
        (params("SMmix-erased", main), None, "dropped"),
        (params("SMmix-unknown", main), None, "stored"),
    ]
    batcher = StatusBatcher(max_writers=1)
    with structlog.testing.capture_logs() as logs:
        answers = await asyncio.wait_for(asyncio.gather(
            *(batcher.store(deps, p, m) for p, m, _ in requests), return_exceptions=True), 5)
    assert [e["rows"] for e in logs if e["event"] == "webhook_batch_stored"] == [len(requests)], "one batch"

    def shape(answer):
        if isinstance(answer, HttpError):
            return answer.status
        return "dropped" if answer is None else "stored"

    assert [shape(a) for a in answers] == [want for _, _, want in requests]
    assert [a.code for a in answers if isinstance(a, HttpError)] == ["account_mismatch"] * 2
    rows = await pool.fetch("SELECT message_sid, message_id FROM twilio_inbox ORDER BY id")
    assert [(r["message_sid"], r["message_id"]) for r in rows] == [
        ("SMmix-mine", mine), ("SMmix-theirs", None), ("SMmix-unknown", None)]
