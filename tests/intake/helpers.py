"""Helpers of the intake and lookup tests: posting signups, reading them back, seeing what
this process enqueued, and asking the simulator what it was asked."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import aiohttp
import dramatiq
import pytest
import pytest_asyncio
from dramatiq.middleware import Middleware

from ops.actors import ping_worker
from tests.support import wait_for

_external = itertools.count(1)


def external_id() -> str:
    return f"crm-{next(_external)}"


async def post_lead(http: aiohttp.ClientSession, firm, **fields: Any) -> tuple[int, dict]:
    body = {"external_id": external_id(), "name": "Dana Lead", "email": "dana@example.com",
            "event": "Spring seminar", "phone": "(212) 555-1200", **fields}
    async with http.post("/v1/leads", json=body, headers=firm.headers) as resp:
        return resp.status, await resp.json()


async def get_lead(http: aiohttp.ClientSession, firm, lead_id: int) -> tuple[int, dict]:
    async with http.get(f"/v1/leads/{lead_id}", headers=firm.headers) as resp:
        return resp.status, await resp.json()


async def sim_lookups(sim: str, phone: str | None = None) -> list[dict]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{sim}/sim/lookups") as resp:
            lookups = (await resp.json())["lookups"]
    return [x for x in lookups if phone is None or x["phone_number"] == phone]


async def set_sim(sim: str, **config: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim}/sim/config", json=config) as resp:
            assert resp.status == 200, await resp.text()


class EnqueueRecorder(Middleware):
    """What this process put on the broker: (actor name, args) per message."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple]] = []

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int) -> None:
        self.sent.append((message.actor_name, tuple(message.args)))

    def of(self, actor_name: str) -> list[tuple]:
        return [args for name, args in self.sent if name == actor_name]


@pytest.fixture
def enqueued(broker):
    recorder = EnqueueRecorder()
    broker.middleware.append(recorder)
    try:
        yield recorder
    finally:
        broker.middleware.remove(recorder)


@pytest_asyncio.fixture
async def ready_worker(worker, deps):
    """The session's worker, answering: a timing below starts at its POST, not at a boot."""
    token = uuid.uuid4().hex
    ping_worker.send(token)
    await wait_for(lambda: deps.redis.get(f"leadsms:ping:{token}"), timeout=60, what="the worker to boot")
    return worker


async def settled(http, firm, lead_id: int, *, timeout: float = 10.0) -> dict:
    """The lead once validation and (for a valid phone) Lookup are done."""
    async def done():
        _, lead = await get_lead(http, firm, lead_id)
        if lead["phone_status"] == "pending":
            return None
        if lead["phone_status"] == "valid" and lead["line_type"] is None:
            return None
        return lead

    return await wait_for(done, timeout=timeout, interval=0.02, what=f"lead {lead_id} to settle")
