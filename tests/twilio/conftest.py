"""Fixtures for the Twilio client and simulator tests: a real simulator on a free port,
the real SDK client pointed at it, and a tiny webhook receiver that checks signatures
with the twilio SDK's RequestValidator, the way our webhooks do.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from shared.twilio import TwilioClient
from devtools.twilio_sim import SimConfig, run_sim

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789"
FIRM_NUMBER = "+14155559000"


@dataclass
class Received:
    path: str
    url: str  # PUBLIC_BASE_URL + path + query: what a webhook signs against
    params: dict[str, str]
    signature: str | None
    valid: bool


@dataclass
class Receiver:
    """Our side of the webhooks, reduced to: record, validate, answer."""

    token: str
    base_url: str = ""
    answer_status: int = 204
    received: list[Received] = field(default_factory=list)

    def of_kind(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        url = self.base_url + request.path_qs
        signature = request.headers.get("X-Twilio-Signature")
        valid = bool(signature) and RequestValidator(self.token).validate(url, params, signature)
        self.received.append(Received(request.path, url, params, signature, valid))
        if request.path == "/twilio/inbound":
            return web.Response(status=200, text="<Response/>", content_type="text/xml")
        return web.Response(status=self.answer_status)


@pytest.fixture
async def receiver() -> Any:
    rec = Receiver(AUTH_TOKEN)
    app = web.Application()
    app.router.add_post("/twilio/status", rec.handle)
    app.router.add_post("/twilio/inbound", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield rec
    await runner.cleanup()


@pytest.fixture
def sim_config(receiver: Receiver) -> SimConfig:
    return SimConfig(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        public_base_url=receiver.base_url,
        callback_delay_s=0.02,
        late_delay_s=0.3,
    )


@pytest.fixture
async def sim_url(sim_config: SimConfig) -> Any:
    async with run_sim(sim_config) as base_url:
        yield base_url


@pytest.fixture
async def twilio(sim_url: str) -> Any:
    client = TwilioClient(ACCOUNT_SID, AUTH_TOKEN, base_url=sim_url, timeout=5.0)
    yield client
    await client.close()


class SimHttp:
    """The simulator's /sim inspection endpoints."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session

    async def get(self, path: str, **params: str) -> Any:
        async with self.session.get(self.base_url + path, params=params) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def post(self, path: str, payload: Any = None) -> tuple[int, Any]:
        async with self.session.post(self.base_url + path, json=payload) as response:
            return response.status, await response.json()


@pytest.fixture
async def sim_http(sim_url: str) -> Any:
    async with aiohttp.ClientSession() as session:
        yield SimHttp(sim_url, session)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """Poll `condition` (sync or async, truthy when done) until it holds or time runs out."""

    async def wait(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(interval)

    return wait
