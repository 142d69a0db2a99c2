"""A webhook never waits long for a pool connection: 503 (Twilio retries), not a hang
past Twilio's 15 s, when every connection is held (a scraper, a slow query)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from devtools.twilio_sim.signing import inbound_params, status_params
from shared.app import create_app
from shared.db import create_pool
from shared.deps import Deps
from tests.support import free_port, serve_app
from tests.webhooks.support import post_signed
from webhooks import inbox

PHONE = "+16465551299"


async def test_webhooks_answer_503_when_no_pool_connection_frees_up_in_time(settings, deps, broker, pool, firm,
                                                                           monkeypatch):
    monkeypatch.setattr(inbox, "ACQUIRE_TIMEOUT_S", 0.5)
    port = free_port()
    own = settings.replace(public_base_url=f"http://127.0.0.1:{port}", port=port)
    tiny = await create_pool(own.database_url, min_size=1, max_size=1)
    app = create_app(own, deps=Deps(settings=own, pool=tiny, redis=deps.redis, twilio=None), broker=broker)
    try:
        async with serve_app(app, port=port) as url, aiohttp.ClientSession(base_url=url) as http:
            async with tiny.acquire():  # held for the whole test
                for path, params in (
                        ("/twilio/status?m=1", status_params(account_sid=own.twilio_account_sid, sid="SMpool1", to=PHONE,
                                                             from_=firm.number, status="delivered")),
                        ("/twilio/inbound", inbound_params(account_sid=own.twilio_account_sid, from_=PHONE,
                                                           to=firm.number, body="Hi"))):
                    started = time.monotonic()
                    answer = await asyncio.wait_for(post_signed(http, own, path, params), 5)
                    assert answer.status == 503, answer.text
                    assert '"code": "unavailable"' in answer.text
                    assert time.monotonic() - started < 3
    finally:
        await tiny.close()
    assert await pool.fetchval("SELECT count(*) FROM twilio_inbox") == 0
