"""lookup/service.py against the Twilio simulator through the real SDK: the cache, one
paid lookup per phone, `valid: false` everywhere, the auth alarm, the lazy lookup."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
import pytest_asyncio
import structlog

from lookup import service
from shared.deps import Deps
from shared.twilio import TwilioClient, TwilioNotReceived, TwilioPermanent
from tests.intake.helpers import set_sim, sim_lookups
from tests.support import free_port, wait_for


async def add_lead(pool, firm_id: int, phone: str, *, status: str = "valid", error: str | None = None) -> int:
    return await pool.fetchval(
        """INSERT INTO leads (firm_id, external_id, phone_raw, phone_e164, phone_status, phone_error)
           VALUES ($1, gen_random_uuid()::text, $2, $2, $3, $4) RETURNING id""",
        firm_id, phone, status, error,
    )


@pytest_asyncio.fixture
async def late_sim(sim):
    """The simulator's 07xx numbers answer 0.5 s late for this test."""
    await set_sim(sim, late_delay_s=0.5)
    try:
        yield sim
    finally:
        await set_sim(sim, late_delay_s=2.0)


@pytest_asyncio.fixture
async def deps_with_twilio(deps):
    """make(**client kwargs) -> Deps like `deps` with another Twilio client (closed after)."""
    clients: list[TwilioClient] = []

    def make(*, auth_token: str | None = None, base_url: str | None = None) -> Deps:
        client = TwilioClient(deps.settings.twilio_account_sid, auth_token or deps.settings.twilio_auth_token,
                              base_url=base_url or deps.settings.twilio_base_url, timeout=2)
        clients.append(client)
        return replace(deps, twilio=client)

    yield make
    for client in clients:
        await client.close()


async def test_a_lookup_stores_the_answer_in_the_global_cache(deps, sim):
    line = await service.lookup_line_type(deps, "+12125551234")

    assert (line.valid, line.line_type, line.carrier) == (True, "mobile", "Sim Mobile Wireless")
    row = await deps.pool.fetchrow("SELECT * FROM phone_lines WHERE phone_e164 = '+12125551234'")
    assert (row["valid"], row["line_type"], row["carrier"]) == (True, "mobile", "Sim Mobile Wireless")
    assert row["raw"]["line_type_intelligence"]["type"] == "mobile" and row["checked_at"] is not None
    assert len(await sim_lookups(sim, "+12125551234")) == 1


async def test_an_answer_younger_than_the_ttl_is_reused_and_an_older_one_is_not(deps, sim):
    await service.lookup_line_type(deps, "+12125551235")
    again = await service.lookup_line_type(deps, "+12125551235")
    assert again.line_type == "mobile"
    assert len(await sim_lookups(sim, "+12125551235")) == 1

    await deps.pool.execute(
        "UPDATE phone_lines SET checked_at = now() - make_interval(days => $1 + 1) WHERE phone_e164 = '+12125551235'",
        deps.settings.lookup_ttl_days)
    await service.lookup_line_type(deps, "+12125551235")
    assert len(await sim_lookups(sim, "+12125551235")) == 2


async def test_force_asks_again_unless_the_answer_is_under_a_minute_old(deps, sim):
    await service.lookup_line_type(deps, "+12125551236")
    await service.lookup_line_type(deps, "+12125551236", force=True)
    assert len(await sim_lookups(sim, "+12125551236")) == 1

    await deps.pool.execute("UPDATE phone_lines SET checked_at = now() - interval '2 minutes'")
    await service.lookup_line_type(deps, "+12125551236", force=True)
    assert len(await sim_lookups(sim, "+12125551236")) == 2


async def test_twenty_concurrent_lookups_of_one_phone_make_one_twilio_call(deps, late_sim):
    phone = "+12125550742"  # 07xx: the simulator answers late, so all twenty overlap the first
    results = await asyncio.gather(*(service.lookup_line_type(deps, phone) for _ in range(20)))

    assert len(await sim_lookups(late_sim, phone)) == 1
    assert sum(r is not None for r in results) >= 1  # the others found the lock held, or the cache filled
    assert await deps.pool.fetchval("SELECT line_type FROM phone_lines WHERE phone_e164 = $1", phone) == "mobile"
    assert await deps.redis.get(service.lock_key(phone)) is None  # released


async def test_a_phone_locked_by_another_worker_is_left_to_it(deps, sim):
    await deps.redis.set(service.lock_key("+12125551237"), "someone-else", px=5000)
    assert await service.lookup_line_type(deps, "+12125551237") is None
    assert await sim_lookups(sim, "+12125551237") == []
    assert await deps.redis.get(service.lock_key("+12125551237")) == b"someone-else"


async def test_lookup_valid_false_makes_the_phone_invalid_for_every_firm(deps, sim, make_firm):
    a, b = await make_firm(), await make_firm()
    leads = [await add_lead(deps.pool, a.id, "+12125550442"), await add_lead(deps.pool, b.id, "+12125550442")]
    other = await add_lead(deps.pool, a.id, "+12125551238")

    line = await service.lookup_line_type(deps, "+12125550442")

    assert (line.valid, line.line_type) == (False, None)
    rows = await deps.pool.fetch("SELECT phone_status, phone_error FROM leads WHERE id = ANY($1)", leads)
    assert {tuple(r) for r in rows} == {("invalid", "lookup_invalid")}
    assert await deps.pool.fetchval("SELECT phone_status FROM leads WHERE id = $1", other) == "valid"
    codes = await deps.pool.fetch("SELECT send_block_code(firm_id, phone_status, phone_e164) FROM leads WHERE id = ANY($1)",
                                  leads)
    assert {r[0] for r in codes} == {"invalid_phone"}


async def test_a_lookup_that_finds_a_phone_invalid_writes_each_firms_lead_updated(deps, sim, make_firm):
    a, b = await make_firm(), await make_firm()
    leads = {a.id: await add_lead(deps.pool, a.id, "+12125550443"), b.id: await add_lead(deps.pool, b.id, "+12125550443")}
    since = await deps.pool.fetchval("SELECT coalesce(max(id), 0) FROM events")

    await service.lookup_line_type(deps, "+12125550443")

    rows = await deps.pool.fetch("SELECT firm_id, data FROM events WHERE id > $1 AND type = 'lead.updated' ORDER BY id",
                                 since)
    got = {r["firm_id"]: r["data"] for r in rows}
    assert set(got) == {a.id, b.id} and len(rows) == 2
    for firm_id, data in got.items():
        assert data["lead_id"] == leads[firm_id]
        assert (data["phone_status"], data["phone_error"], data["code"]) == ("invalid", "lookup_invalid", "invalid_phone")
        assert data["sendable"] is False and data["line_checked_at"]


async def test_a_later_valid_answer_lifts_only_the_lookup_mark(deps, sim, firm):
    marked = await add_lead(deps.pool, firm.id, "+12125551239", status="invalid", error="lookup_invalid")
    await deps.pool.execute("INSERT INTO phone_lines (phone_e164, valid, checked_at) "
                            "VALUES ('+12125551239', false, now() - interval '1 year')")

    await service.lookup_line_type(deps, "+12125551239")

    row = await deps.pool.fetchrow("SELECT phone_status, phone_error FROM leads WHERE id = $1", marked)
    assert tuple(row) == ("valid", None)


async def test_an_auth_failure_raises_permanent_and_alarms_once(deps_with_twilio, sim, deps):
    bad = deps_with_twilio(auth_token="not-the-token")
    with structlog.testing.capture_logs() as logs:
        for phone in ("+12125551240", "+12125551241", "+12125551242"):
            with pytest.raises(TwilioPermanent) as caught:
                await service.lookup_line_type(bad, phone)
            assert caught.value.status == 401 and caught.value.code == 20003
    alarms = [e for e in logs if e["event"] == "twilio_auth_failed"]
    assert len(alarms) == 1 and alarms[0]["log_level"] == "critical"
    assert "TWILIO_AUTH_TOKEN" in alarms[0]["hint"]
    assert await deps.pool.fetchval("SELECT count(*) FROM phone_lines WHERE phone_e164 LIKE '+1212555124%'") == 0
    assert await deps.redis.get(service.lock_key("+12125551240")) is None


async def test_twilio_unreachable_is_a_not_received_error_and_releases_the_lock(deps_with_twilio, deps):
    down = deps_with_twilio(base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TwilioNotReceived):
        await service.lookup_line_type(down, "+12125551243")
    assert await deps.redis.get(service.lock_key("+12125551243")) is None
    assert await deps.pool.fetchval("SELECT count(*) FROM phone_lines WHERE phone_e164 = '+12125551243'") == 0


# ---- lazy lookup (thread open) -----------------------------------------------------------

async def test_lazy_lookup_of_an_unknown_line_looks_it_up_inline(deps, sim):
    line = await service.lazy_line_type(deps, "+12125550043")
    assert (line.valid, line.line_type) == (True, "landline")
    assert len(await sim_lookups(sim, "+12125550043")) == 1
    assert (await service.lazy_line_type(deps, "+12125550043")).line_type == "landline"
    assert len(await sim_lookups(sim, "+12125550043")) == 1


async def test_lazy_lookup_answers_unknown_after_its_wait_and_the_lookup_still_lands(deps, late_sim):
    started = time.monotonic()
    assert await service.lazy_line_type(deps, "+12125550743", wait_ms=100) is None
    assert time.monotonic() - started < 0.4

    await wait_for(lambda: deps.pool.fetchval("SELECT line_type FROM phone_lines WHERE phone_e164 = '+12125550743'"),
                   timeout=5, what="the background lookup to fill the cache")


async def test_lazy_lookup_answers_a_stale_line_at_once_and_refreshes_it(deps, sim):
    await deps.pool.execute(
        "INSERT INTO phone_lines (phone_e164, valid, line_type, checked_at) "
        "VALUES ('+12125551244', true, 'landline', now() - make_interval(days => $1 + 1))",
        deps.settings.lookup_ttl_days)

    line = await service.lazy_line_type(deps, "+12125551244")

    assert line.line_type == "landline"  # what we knew, without waiting
    await wait_for(lambda: deps.pool.fetchval(
        "SELECT line_type = 'mobile' FROM phone_lines WHERE phone_e164 = '+12125551244'"),
        timeout=5, what="the refresh")


async def test_lazy_lookup_waits_for_another_workers_lookup(deps, sim):
    phone = "+12125551245"
    await deps.redis.set(service.lock_key(phone), "another-worker", px=5000)

    async def other_worker_answers():
        await asyncio.sleep(0.2)
        await deps.pool.execute("INSERT INTO phone_lines (phone_e164, valid, line_type) VALUES ($1, true, 'mobile')",
                                phone)

    line, _ = await asyncio.gather(service.lazy_line_type(deps, phone, wait_ms=2000), other_worker_answers())
    assert line.line_type == "mobile"
    assert await sim_lookups(sim, phone) == []


async def test_lazy_lookup_answers_unknown_when_twilio_refuses(deps_with_twilio, sim):
    bad = deps_with_twilio(auth_token="not-the-token")
    assert await service.lazy_line_type(bad, "+12125551246", wait_ms=2000) is None


# ---- what sends teach, and what is counted -----------------------------------------------

async def test_a_send_refused_as_not_mobile_records_a_landline(deps, firm):
    await deps.pool.execute("INSERT INTO phone_lines (phone_e164, valid, line_type, carrier) "
                            "VALUES ('+12125551250', true, 'mobile', 'Sim Mobile')")
    async with deps.pool.acquire() as conn, conn.transaction():
        await service.record_landline(conn, "+12125551250")
        await service.record_landline(conn, "+12125551251")
    rows = {r["phone_e164"]: r for r in await deps.pool.fetch("SELECT * FROM phone_lines")}
    assert (rows["+12125551250"]["line_type"], rows["+12125551250"]["carrier"]) == ("landline", "Sim Mobile")
    assert (rows["+12125551251"]["valid"], rows["+12125551251"]["line_type"]) == (True, "landline")
    assert rows["+12125551251"]["raw"] == {"source": "twilio_21614"}


async def test_a_send_refused_as_no_such_number_makes_it_invalid_everywhere_with_the_reason(deps, make_firm, sim):
    a, b = await make_firm(), await make_firm()
    leads = [await add_lead(deps.pool, a.id, "+12125551252"), await add_lead(deps.pool, b.id, "+12125551252")]
    async with deps.pool.acquire() as conn, conn.transaction():
        assert await service.record_invalid(conn, "+12125551252", "twilio_30005") == 2
    rows = await deps.pool.fetch("SELECT phone_status, phone_error FROM leads WHERE id = ANY($1)", leads)
    assert {tuple(r) for r in rows} == {("invalid", "twilio_30005")}
    assert await deps.pool.fetchval("SELECT valid FROM phone_lines WHERE phone_e164 = '+12125551252'") is False
    # cached as a fresh answer: no paid lookup for it while the TTL runs
    assert (await service.lookup_line_type(deps, "+12125551252")).valid is False
    assert await sim_lookups(sim, "+12125551252") == []


async def counter(deps, result: str) -> int:
    return int(await deps.redis.hget("leadsms:metrics:leadsms_lookups_total", f'result="{result}"') or 0)


async def latency_count(deps) -> int:
    return int(await deps.redis.hget("leadsms:metrics:leadsms_intake_to_line_type_seconds", "count|") or 0)


async def test_lookups_are_counted_made_cache_hit_failed_and_intake_latency_observed(deps, deps_with_twilio, sim, firm):
    await add_lead(deps.pool, firm.id, "+12125551253")
    await service.lookup_line_type(deps, "+12125551253")
    await service.lookup_line_type(deps, "+12125551253")
    with pytest.raises(TwilioPermanent):
        await service.lookup_line_type(deps_with_twilio(auth_token="wrong"), "+12125551254")

    assert (await counter(deps, "made"), await counter(deps, "cache_hit"), await counter(deps, "failed")) == (1, 1, 1)
    assert await latency_count(deps) == 1  # the one signup that waited for the answer

    await deps.pool.execute("UPDATE phone_lines SET checked_at = now() - interval '2 minutes'")
    await service.lookup_line_type(deps, "+12125551253", force=True)
    assert await latency_count(deps) == 1  # a refresh resolves no waiting signup
