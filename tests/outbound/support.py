"""Helpers of the outbound webhook tests: a real HTTP receiver that verifies every request
with `standardwebhooks.Webhook.verify`, and endpoint helpers over the real API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import aiohttp
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support import serve_app


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    payload: dict[str, Any] | None  # None: the signature did not verify
    at: float


@dataclass
class Receiver:
    """Answers each request with the next of `answers` (then 200), and records it, verified
    with `secrets` (any one of them verifying is enough, as a receiver would check)."""

    secrets: list[str] = field(default_factory=list)
    answers: list[int | str] = field(default_factory=list)  # a status, or "hang"
    got: list[Received] = field(default_factory=list)
    url: str = ""
    retry_after: str | None = None
    delay_s: float = 0.0  # time each answer takes

    def verified(self, secret: str, item: Received) -> dict[str, Any] | None:
        try:
            return Webhook(secret).verify(item.body, item.headers)
        except WebhookVerificationError:
            return None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        headers = {k.lower(): v for k, v in request.headers.items()}
        item = Received(headers, body, None, time.monotonic())
        for secret in self.secrets:
            item.payload = self.verified(secret, item)
            if item.payload is not None:
                break
        self.got.append(item)
        answer = self.answers.pop(0) if self.answers else 200
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if answer == "hang":
            await asyncio.sleep(3600)
        headers_out = {"Retry-After": self.retry_after} if self.retry_after else None
        return web.Response(status=int(answer), text="ok" if answer == 200 else "nope", headers=headers_out)

    def of_type(self, event_type: str) -> list[Received]:
        return [g for g in self.got if g.payload is not None and g.payload["type"] == event_type]


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    async with serve_app(app, shutdown_timeout=0.5) as base:
        receiver.url = f"{base}/hook"
        yield receiver


async def add_endpoint(http: aiohttp.ClientSession, firm: Any, url: str, events: list[str] | None = None) -> dict:
    async with http.post("/v1/webhook-endpoints", json={"url": url, "events": events or ["*"]},
                         headers=firm.headers) as r:
        assert r.status == 201, await r.text()
        return await r.json()


async def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
