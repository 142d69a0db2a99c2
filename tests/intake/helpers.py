"""Helpers of the intake and lookup tests: posting signups, reading them back, seeing what
this process enqueued, and asking the simulator what it was asked."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import dramatiq
import pytest
from dramatiq.middleware import Middleware

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
