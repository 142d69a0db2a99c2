"""The simulator's fault knobs do what the fault scenarios rely on (fast; runs in `make test`)."""

from __future__ import annotations

import time

import aiohttp
import pytest

OFF = {"fail_500_rate": 0, "created_500_rate": 0, "hang_rate": 0, "list_500_rate": 0, "slow_s": 0,
       "burst_429": 0, "fault_seed": 0, "hang_s": 15, "list_slow_s": 0, "lookup_500_rate": 0}


@pytest.fixture
async def twilio(sim, settings):
    auth = {"Authorization": aiohttp.encode_basic_auth(settings.twilio_account_sid, settings.twilio_auth_token)}
    async with aiohttp.ClientSession(base_url=sim, headers=auth) as session:
        yield session
        async with session.post("/sim/config", json=OFF) as resp:
            assert resp.status == 200


async def configure(twilio, **knobs) -> dict:
    async with twilio.post("/sim/config", json=knobs) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def create(twilio, settings, to: str = "+12125557777") -> tuple[int, dict]:
    form = {"To": to, "From": "+16465550100", "Body": "knob test"}
    async with twilio.post(f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages.json", data=form) as resp:
        return resp.status, await resp.json()


async def created(twilio) -> int:
    async with twilio.get("/sim/messages") as resp:
        return len((await resp.json())["messages"])


async def test_a_500_fault_creates_nothing_and_a_created_500_fault_creates_the_message(twilio, settings):
    await configure(twilio, fail_500_rate=1.0)
    assert (await create(twilio, settings))[0] == 500
    assert await created(twilio) == 0
    await configure(twilio, fail_500_rate=0, created_500_rate=1.0)
    assert (await create(twilio, settings))[0] == 500
    assert await created(twilio) == 1


async def test_a_429_burst_refuses_exactly_that_many_creates(twilio, settings):
    await configure(twilio, burst_429=3)
    answers = [(await create(twilio, settings))[0] for _ in range(4)]
    assert answers == [429, 429, 429, 201]
    async with twilio.get("/sim/counters") as resp:
        counters = await resp.json()
    assert counters["fault_429"] == 3 and counters["burst_429_left"] == 0


async def test_a_hang_creates_the_message_and_answers_late(twilio, settings):
    await configure(twilio, hang_rate=1.0, hang_s=0.5)
    started = time.monotonic()
    status, body = await create(twilio, settings)
    assert status == 201 and time.monotonic() - started >= 0.5
    assert await created(twilio) == 1


async def test_slow_answers_and_failing_lists(twilio, settings):
    await configure(twilio, slow_s=0.3, list_500_rate=1.0)
    started = time.monotonic()
    assert (await create(twilio, settings))[0] == 201
    assert time.monotonic() - started >= 0.3
    async with twilio.get(f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages.json") as resp:
        assert resp.status == 500


async def test_a_slow_list_answers_late_and_a_failing_lookup_is_counted(twilio, settings):
    await configure(twilio, list_slow_s=0.3, lookup_500_rate=1.0)
    started = time.monotonic()
    async with twilio.get(f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages.json") as resp:
        assert resp.status == 200
    assert time.monotonic() - started >= 0.3
    async with twilio.get("/v2/PhoneNumbers/+12125557777", params={"Fields": "line_type_intelligence"}) as resp:
        assert resp.status == 500
    async with twilio.get("/sim/counters") as resp:
        counters = await resp.json()
    assert (counters["lookup_requests"], counters["lookups"], counters["fault_lookup_500"]) == (1, 0, 1)


async def test_the_same_seed_draws_the_same_faults(twilio, settings):
    runs = []
    for _ in range(2):
        await configure(twilio, fail_500_rate=0.5, fault_seed=42)
        runs.append([(await create(twilio, settings, to=f"+1212555{7000 + i}"))[0] for i in range(12)])
    assert runs[0] == runs[1] and set(runs[0]) == {201, 500}


@pytest.mark.parametrize("bad", [{"fail_500_rate": 1.5}, {"hang_rate": -0.1}, {"burst_429": -1},
                                 {"burst_429": 2.5}, {"fault_seed": True}, {"slow_s": -1},
                                 {"list_slow_s": -1}, {"lookup_500_rate": 2}])
async def test_malformed_knobs_are_refused(twilio, bad):
    async with twilio.post("/sim/config", json=bad) as resp:
        assert resp.status == 400
