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


PHONE = "+12125550177"


async def _conversation(pool, firm) -> int:
    return await pool.fetchval(
        "INSERT INTO conversations (firm_id, phone_e164) VALUES ($1, $2) RETURNING id", firm.id, PHONE)


async def _cause_event(http: aiohttp.ClientSession, url: str, firm, pool, conversation: int) -> None:
    """A staff decision through `url`: its conversation.updated event is written by that web.
    (A review enqueues no job, so no worker of another test is left busy with this one's.)"""
    await pool.execute(
        """INSERT INTO phone_flags (firm_id, phone_e164, review_pending) VALUES ($1, $2, true)
           ON CONFLICT (firm_id, phone_e164) DO UPDATE SET review_pending = true""", firm.id, PHONE)
    async with http.post(f"{url}/v1/conversations/{conversation}/review", json={"decision": "keep"},
                         headers=firm.user("staff-1")) as resp:
        assert resp.status == 200, await resp.text()


async def _cursors(stream, n: int) -> list[str]:
    got = await stream.events(n, timeout=15)
    assert {kind for _, kind, _ in got} == {"conversation.updated"}
    return [ident for ident, _, _ in got]


async def test_an_event_caused_through_one_web_reaches_a_stream_held_on_another(settings, firm, pool, tmp_path):
    with web_process(settings, tmp_path, "web-a", free_port()) as a, \
            web_process(settings, tmp_path, "web-b", free_port()) as b:
        async with asyncio.timeout(60), aiohttp.ClientSession() as http:
            await _up(http, a)
            await _up(http, b)
            conversation = await _conversation(pool, firm)
            stream = await open_stream(http, b, await stream_token(http, a, firm.headers))  # a token from A works on B
            loop = asyncio.get_running_loop()
            started = loop.time()
            await _cause_event(http, a, firm, pool, conversation)
            _, kind, item = await stream.next_event(timeout=15)
            assert kind == "conversation.updated" and item["data"]["conversation_id"] == conversation
            assert loop.time() - started < 1.0, "woken by Redis, not by the next heartbeat"
            stream.close()


async def test_a_web_restarted_mid_stream_loses_nothing_for_a_client_that_reconnects(settings, firm, pool, tmp_path):
    port = free_port()
    with web_process(settings, tmp_path, "web-other", free_port()) as other:
        async with asyncio.timeout(90), aiohttp.ClientSession() as http:
            await _up(http, other)
            conversation = await _conversation(pool, firm)
            with web_process(settings, tmp_path, "web-1", port) as first:
                await _up(http, first)
                stream = await open_stream(http, first, await stream_token(http, other, firm.headers))
                await _cause_event(http, other, firm, pool, conversation)
                seen = await _cursors(stream, 1)
                last_id = stream.last_id
                stopping = asyncio.get_running_loop().time()
            # A stopped web ends its streams at once rather than holding its shutdown for
            # the grace period (5 s) while they stay open.
            assert asyncio.get_running_loop().time() - stopping < 2.5, "SIGTERM waited for the open stream"
            # the web is gone; events keep coming through the other one
            for _ in range(4):
                await _cause_event(http, other, firm, pool, conversation)
            with pytest.raises((ConnectionError, aiohttp.ClientError, TimeoutError)):
                await stream.next_event(timeout=5)  # ended by the web, not by this timeout
            stream.close()
            with web_process(settings, tmp_path, "web-1-again", port) as again:
                await _up(http, again)
                resumed = await open_stream(http, again, await stream_token(http, other, firm.headers),
                                            last_event_id=last_id)
                await _cause_event(http, other, firm, pool, conversation)
                assert await _cursors(resumed, 5) == [str(int(seen[0]) + k) for k in range(1, 6)]
                with pytest.raises(TimeoutError):
                    await resumed.next_event(timeout=2.5)
                resumed.close()
