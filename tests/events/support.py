"""Helpers of the change-feed tests: an SSE reader, a stream token, an app of our own."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


class SseStream:
    """A Server-Sent Events client over aiohttp: `next_event()` returns (id, type, data)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.last_id: str | None = None
        self.comments = 0

    async def next_event(self, timeout: float = 10.0) -> tuple[str, str, dict[str, Any]]:
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise ConnectionError("stream closed")
                line = raw.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if "data" in fields:
                        self.last_id = fields.get("id", self.last_id)
                        return fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"])
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value

    async def events(self, n: int, timeout: float = 10.0) -> list[tuple[str, str, dict[str, Any]]]:
        return [await self.next_event(timeout) for _ in range(n)]

    def close(self) -> None:
        self.response.close()


async def stream_token(http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> str:
    async with http.post(f"{base}/v1/stream-tokens", headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        return (await resp.json())["token"]


async def open_stream(http: aiohttp.ClientSession, base: str, token: str, *, after: str | None = None,
                      last_event_id: str | None = None) -> SseStream:
    params = {"token": token}
    if after is not None:
        params["after"] = after
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    resp = await http.get(f"{base}/v1/events/stream", params=params, headers=headers,
                          timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    assert resp.status == 200, await resp.text()
    return SseStream(resp)


async def feed_next(http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> str:
    async with http.get(f"{base}/v1/events", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["next"]
