"""Real `leadsms web` processes: an event caused through one web reaches a stream held on
another, and a web restarted mid-stream loses nothing for a client that reconnects."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Iterator

import aiohttp
import pytest

from tests.events.support import open_stream, stream_token
from tests.support import free_port, leadsms_command, spawn, stop_process, wait_for

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def web_process(settings, tmp_path, name: str, port: int) -> Iterator[str]:
    env = settings.to_env()
    env.update({"PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "STREAM_HEARTBEAT_S": "1",
                "METRICS_PORT": "0"})
    proc = spawn(leadsms_command("web"), env, tmp_path / f"{name}.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


async def _up(http: aiohttp.ClientSession, url: str) -> None:
    async def ready() -> bool:
        try:
            async with http.get(f"{url}/healthz") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False
    await wait_for(ready, timeout=20, interval=0.2, what=f"{url} to answer")


async def _post_lead(http: aiohttp.ClientSession, url: str, firm, n: int) -> int:
    async with http.post(f"{url}/v1/leads", headers=firm.headers,
                         json={"external_id": f"crm-{n}", "name": f"Lead {n}", "phone": "(212) 555-0101"}) as resp:
        assert resp.status == 202, await resp.text()
        return (await resp.json())["lead_id"]


async def _lead_ids(stream, n: int) -> list[int]:
    return [item["data"]["lead_id"] for _, kind, item in await stream.events(n, timeout=15) if kind == "lead.updated"]


async def test_an_event_caused_through_one_web_reaches_a_stream_held_on_another(settings, firm, tmp_path):
    with web_process(settings, tmp_path, "web-a", free_port()) as a, \
            web_process(settings, tmp_path, "web-b", free_port()) as b:
        async with asyncio.timeout(60), aiohttp.ClientSession() as http:
            await _up(http, a)
            await _up(http, b)
            stream = await open_stream(http, b, await stream_token(http, a, firm.headers))  # a token from A works on B
            loop = asyncio.get_running_loop()
            started = loop.time()
            lead_id = await _post_lead(http, a, firm, 1)
            assert await _lead_ids(stream, 1) == [lead_id]
            assert loop.time() - started < 1.0, "woken by Redis, not by the next heartbeat"
            stream.close()


async def test_a_web_restarted_mid_stream_loses_nothing_for_a_client_that_reconnects(settings, firm, tmp_path):
    port = free_port()
    with web_process(settings, tmp_path, "web-other", free_port()) as other:
        async with asyncio.timeout(90), aiohttp.ClientSession() as http:
            await _up(http, other)
            with web_process(settings, tmp_path, "web-1", port) as first:
                await _up(http, first)
                stream = await open_stream(http, first, await stream_token(http, other, firm.headers))
                seen = [await _post_lead(http, other, firm, 1)]
                assert await _lead_ids(stream, 1) == seen
                last_id = stream.last_id
            # the web is gone; events keep coming through the other one
            written = [await _post_lead(http, other, firm, n) for n in range(2, 6)]
            with pytest.raises((ConnectionError, aiohttp.ClientError, TimeoutError)):
                await stream.next_event(timeout=5)
            stream.close()
            with web_process(settings, tmp_path, "web-1-again", port) as again:
                await _up(http, again)
                resumed = await open_stream(http, again, await stream_token(http, other, firm.headers),
                                            last_event_id=last_id)
                written.append(await _post_lead(http, other, firm, 6))
                assert await _lead_ids(resumed, len(written)) == written
                with pytest.raises(TimeoutError):
                    await resumed.next_event(timeout=2.5)
                resumed.close()
