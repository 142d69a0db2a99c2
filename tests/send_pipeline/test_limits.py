"""The duplicate window and the rate limit, against the real Redis."""

import asyncio

from send_pipeline.limits import dedupe_key, gate_for, rate_key


async def check(deps, *, user="u1", body="Hi", message_id=1, conversation_id=5, limit=3, window_ms=2000):
    return await gate_for(deps.redis).check(firm_id=1, user=user, conversation_id=conversation_id, body=body,
                                            message_id=message_id, window_ms=window_ms, limit=limit)


async def test_a_duplicate_inside_the_window_gets_the_first_id_and_is_not_charged(deps):
    assert (await check(deps, message_id=10)).accepted
    again = await check(deps, message_id=11)
    assert (again.accepted, again.duplicate_of) == (False, 10)
    assert await deps.redis.zcard(rate_key(1, "u1")) == 1


async def test_the_window_expires(deps):
    assert (await check(deps, message_id=10, window_ms=50)).accepted
    await asyncio.sleep(0.1)
    assert (await check(deps, message_id=11, window_ms=50)).accepted


async def test_the_limit_refuses_with_a_retry_after_and_releases_the_duplicate_key(deps):
    for n in range(3):
        assert (await check(deps, body=f"m{n}", message_id=n + 1)).accepted
    refused = await check(deps, body="m3", message_id=4)
    assert not refused.accepted and refused.duplicate_of is None
    assert 1 <= refused.retry_after_s <= 60
    assert not await deps.redis.exists(dedupe_key(1, "u1", 5, "m3"))
    other_user = await check(deps, user="u2", body="m3", message_id=5)
    assert other_user.accepted


async def test_the_limit_is_atomic_under_concurrent_requests(deps):
    results = await asyncio.gather(*(check(deps, body=f"b{n}", message_id=n + 1, limit=10) for n in range(40)))
    assert sum(r.accepted for r in results) == 10


async def test_release_forgets_the_window_and_the_charge(deps):
    gate = gate_for(deps.redis)
    assert (await check(deps, message_id=10)).accepted
    await gate.release(firm_id=1, user="u1", conversation_id=5, body="Hi", message_id=10)
    assert await deps.redis.zcard(rate_key(1, "u1")) == 0
    assert (await check(deps, message_id=11)).accepted
