"""The lookup_line_type actor under dramatiq's real Retries middleware: a worker on a
StubBroker (its own event loop and deps, as in `leadsms worker`) and a Twilio Lookup
endpoint that fails the way a test scripts it, reached through the real SDK."""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from typing import Iterator

import dramatiq
import pytest_asyncio
import structlog
from aiohttp import web
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, CurrentMessage

from lookup.actors import lookup_line_type, retry_delay_ms
from shared.broker import WorkerDeps
from shared.config import Settings
from tests.support import free_port


class ScriptedLookup:
    """GET /v2/PhoneNumbers/{n}: the scripted (status, code) answers first, then mobile."""

    def __init__(self) -> None:
        self.script: list[tuple[int, int]] = []
        self.calls: list[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(time.monotonic())
        if self.script:
            status, code = self.script.pop(0)
            return web.json_response({"code": code, "message": f"scripted {code}", "status": status,
                                      "more_info": f"https://www.twilio.com/docs/errors/{code}"}, status=status)
        number = request.match_info["number"]
        return web.json_response({
            "phone_number": number, "valid": True, "country_code": "US", "calling_country_code": "1",
            "national_format": number, "validation_errors": [], "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
            "line_type_intelligence": {"type": "mobile", "carrier_name": "Scripted Wireless", "error_code": None,
                                       "mobile_country_code": "310", "mobile_network_code": "999"},
        })


@pytest_asyncio.fixture
async def scripted() -> tuple[str, ScriptedLookup]:
    fake = ScriptedLookup()
    app = web.Application()
    app.router.add_get("/v2/PhoneNumbers/{number}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", fake
    finally:
        await runner.cleanup()


@contextmanager
def stub_worker(settings: Settings) -> Iterator[tuple[StubBroker, dramatiq.Actor]]:
    """The real actor function and options on a StubBroker with a one-thread worker."""
    broker = StubBroker()
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(WorkerDeps(settings, pool_size=2))
    actor = dramatiq.Actor(lookup_line_type.fn, broker=broker, actor_name=lookup_line_type.actor_name,
                           queue_name=lookup_line_type.queue_name, priority=0, options=dict(lookup_line_type.options))
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_timeout=20, worker_threads=1)
    worker.start()
    try:
        yield broker, actor
    finally:
        worker.stop()
        broker.close()


async def run_one(settings: Settings, phone: str) -> StubBroker:
    with stub_worker(settings) as (broker, actor):
        actor.send(phone)
        await asyncio.to_thread(broker.join, actor.queue_name, fail_fast=False, timeout=20_000)
        return broker


async def test_not_received_lookups_are_retried_with_the_configured_backoff(settings, scripted, pool):
    url, fake = scripted
    fake.script = [(429, 20429), (503, 20503)]  # Twilio never took it; then no answer
    configured = settings.replace(twilio_base_url=url, retry_min_backoff_ms=250, retry_max_backoff_ms=400)

    broker = await run_one(configured, "+12125551300")

    assert len(fake.calls) == 3
    first_wait, second_wait = fake.calls[1] - fake.calls[0], fake.calls[2] - fake.calls[1]
    assert 0.25 <= first_wait < 1.5 and 0.25 <= second_wait < 1.5, (first_wait, second_wait)
    row = await pool.fetchrow("SELECT valid, line_type, carrier FROM phone_lines WHERE phone_e164 = '+12125551300'")
    assert tuple(row) == (True, "mobile", "Scripted Wireless")
    assert broker.dead_letters == []


async def test_a_permanent_refusal_is_not_retried(settings, scripted, pool):
    url, fake = scripted
    fake.script = [(400, 21211)]

    broker = await run_one(settings.replace(twilio_base_url=url), "+12125551301")

    assert len(fake.calls) == 1
    assert len(broker.dead_letters) == 1
    assert await pool.fetchval("SELECT count(*) FROM phone_lines WHERE phone_e164 = '+12125551301'") == 0


async def test_an_auth_failure_is_not_retried_and_alarms_once(settings, scripted, pool):
    url, fake = scripted
    fake.script = [(401, 20003), (401, 20003)]
    configured = settings.replace(twilio_base_url=url)

    with structlog.testing.capture_logs() as logs:
        with stub_worker(configured) as (broker, actor):
            actor.send("+12125551302")
            actor.send("+12125551303")
            await asyncio.to_thread(broker.join, actor.queue_name, fail_fast=False, timeout=20_000)

    assert len(fake.calls) == 2 and len(broker.dead_letters) == 2
    assert [e["log_level"] for e in logs if e["event"] == "twilio_auth_failed"] == ["critical"]


def test_the_retry_delay_follows_the_settings():
    settings = Settings(retry_min_backoff_ms=1000, retry_max_backoff_ms=300_000)
    assert all(1000 <= retry_delay_ms(settings, 0) <= 2000 for _ in range(50))
    assert all(8000 <= retry_delay_ms(settings, 3) <= 16000 for _ in range(50))
    assert all(150_000 <= retry_delay_ms(settings, 12) <= 300_000 for _ in range(50))
