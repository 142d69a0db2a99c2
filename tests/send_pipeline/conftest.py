"""Fixtures of the send pipeline's tests: leads and conversations set up directly (intake
and lookup are other packages), the simulator's view, and a sweeper in this process."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, AsyncIterator, Awaitable, Callable


import aiohttp
import pytest
import pytest_asyncio

from send_pipeline.sweeps import SWEEPS
from shared.sweeper import Sweeper
from tests.support import stop_process, sweeping_in_process

_external = itertools.count(1)


@pytest.fixture(scope="session")
def worker(worker):
    """The shared session worker, stopped gently when this package's tests are done."""
    yield worker
    for proc in list(worker.procs):
        stop_process(proc)


async def add_lead(pool, firm_id: int, phone: str | None, *, status: str = "valid", name: str = "Dana Lead",
                   error: str | None = None) -> int:
    """A signup as intake would leave it (phone already checked)."""
    if status == "invalid" and error is None:
        error = "invalid_number"
    return await pool.fetchval(
        """INSERT INTO leads (firm_id, external_id, name, email, event, phone_raw, phone_e164, phone_status, phone_error)
           VALUES ($1, $2, $3, 'dana@example.com', 'Spring seminar', $4, $5, $6, $7) RETURNING id""",
        firm_id, f"ext-{next(_external)}", name, phone, phone if status in ("valid", "pending") else None,
        status, error,
    )


async def open_conversation(http: aiohttp.ClientSession, firm, lead_id: int) -> int:
    async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=firm.headers) as resp:
        assert resp.status in (200, 201), await resp.text()
        return (await resp.json())["conversation_id"]


# Rows whose Twilio call may still be coming: claimable now, or claimed recently and not
# yet answered. A test leaves none of these behind for the next one's simulator.
_PENDING_SQL = """
    SELECT count(*) FROM messages
    WHERE twilio_sid IS NULL AND (
        (status = 'queued' AND coalesce(next_attempt_at, created_at) <= now() + interval '1 second')
        OR (status = 'sending' AND next_attempt_at IS NULL AND claimed_at > now() - interval '10 seconds'))
"""


@pytest_asyncio.fixture(autouse=True)
async def drain_sends(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After a test, while a worker runs, let the sends it accepted reach the simulator,
    so they cannot land after the next test's reset (bounded; never fails a test)."""
    if not {"pool", "http", "deps"}.intersection(request.fixturenames):
        yield
        return
    workers = request.getfixturevalue("worker_pool")
    pool = request.getfixturevalue("deps").pool
    yield
    if not any(p.poll() is None for p in workers.procs):
        return
    # Wait while the worker is getting through them; rows it leaves alone for a while
    # (stored without a job, or for another broker) are not coming to the simulator.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    pending, moved_at = await pool.fetchval(_PENDING_SQL), loop.time()
    while pending and loop.time() < min(deadline, moved_at + 1.5):
        await asyncio.sleep(0.05)
        now_pending = await pool.fetchval(_PENDING_SQL)
        if now_pending != pending:
            pending, moved_at = now_pending, loop.time()


@pytest_asyncio.fixture
async def thread(pool, http, firm) -> Callable[..., Awaitable[int]]:
    """make(phone) -> conversation id, for a valid lead of `firm` with that phone."""

    async def make(phone: str, **lead: Any) -> int:
        lead_id = await add_lead(pool, firm.id, phone, **lead)
        return await open_conversation(http, firm, lead_id)

    return make


async def post_send(http: aiohttp.ClientSession, headers: dict, conversation_id: int, body: str) -> tuple[int, dict, Any]:
    async with http.post(f"/v1/conversations/{conversation_id}/messages", json={"body": body}, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def sim_view(sim: str, to: str | None = None) -> dict:
    """{"messages": created messages, "attempts": every create attempt} at the simulator."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{sim}/sim/messages", params={"to": to} if to else None) as resp:
            return await resp.json()


async def set_sim(sim: str, **config: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim}/sim/config", json=config) as resp:
            assert resp.status == 200, await resp.text()


@pytest_asyncio.fixture
async def sweeping(deps, broker) -> AsyncIterator[Sweeper]:
    """This package's sweep tasks, run every 0.3 s in the test process while the test runs."""
    async with sweeping_in_process(deps, {f"send_pipeline.{k}": v for k, v in SWEEPS.items()}) as sweeper:
        yield sweeper


@pytest_asyncio.fixture
async def callbacks_off(sim: str) -> AsyncIterator[None]:
    await set_sim(sim, callbacks_enabled=False)
    try:
        yield
    finally:
        await set_sim(sim, callbacks_enabled=True)
