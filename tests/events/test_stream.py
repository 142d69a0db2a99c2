"""The live stream: resume by Last-Event-ID, heartbeats instead of lost wake-ups, tokens,
slow clients, the per-firm limit. A web app of its own with a 1 s heartbeat."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

import events
from events.hub import CLIENT_QUEUE_MAX
from events.routes import HUB
from shared.app import create_app
from tests.events.support import open_stream, stream_token
from tests.support import serve_app, wait_for


@pytest_asyncio.fixture
async def app_url(settings, deps, broker) -> AsyncIterator[tuple[str, object]]:
    own = settings.replace(stream_heartbeat_s=1, stream_token_ttl_s=2, streams_per_firm=3)
    app = create_app(own, deps=deps.__class__(settings=own, pool=deps.pool, redis=deps.redis, twilio=deps.twilio),
                     broker=broker)
    async with serve_app(app) as url:
        yield url, app


async def _record(pool, firm_id: int, n: int, *, wake_redis=None, size: int = 0) -> None:
    async with pool.acquire() as conn:
        await events.record(conn, firm_id, "lead.updated", {"lead_id": n, "pad": "x" * size})
    if wake_redis is not None:
        await events.wake(wake_redis, [firm_id])


async def test_a_client_that_reconnects_with_last_event_id_gets_every_missed_event_once(app_url, firm, deps):
    url, _ = app_url
    async with asyncio.timeout(30), aiohttp.ClientSession() as http:
        stream = await open_stream(http, url, await stream_token(http, url, firm.headers))
        for n in range(3):
            await _record(deps.pool, firm.id, n, wake_redis=deps.redis)
        got = await stream.events(3)
        assert [item["data"]["lead_id"] for _, _, item in got] == [0, 1, 2]
        assert [kind for _, kind, _ in got] == ["lead.updated"] * 3
        assert [ident for ident, _, item in got] == [item["cursor"] for _, _, item in got]
        stream.close()
        for n in range(3, 8):  # missed while away
            await _record(deps.pool, firm.id, n, wake_redis=deps.redis)
        # Last-Event-ID wins over ?after= (which would replay from the start)
        again = await open_stream(http, url, await stream_token(http, url, firm.headers),
                                  after="0", last_event_id=got[-1][0])
        for n in range(8, 10):  # and live again
            await _record(deps.pool, firm.id, n, wake_redis=deps.redis)
        resumed = await again.events(7)
        assert [item["data"]["lead_id"] for _, _, item in resumed] == list(range(3, 10))
        with pytest.raises(TimeoutError):
            await again.next_event(timeout=2.5)  # nothing twice (heartbeats are comments)
        assert again.comments >= 1, "a heartbeat every STREAM_HEARTBEAT_S"
        again.close()


async def test_an_event_without_its_wakeup_arrives_within_a_heartbeat(app_url, firm, deps):
    url, _ = app_url
    async with asyncio.timeout(20), aiohttp.ClientSession() as http:
        stream = await open_stream(http, url, await stream_token(http, url, firm.headers))
        await _record(deps.pool, firm.id, 1)  # no wake-up published: lost
        loop = asyncio.get_running_loop()
        started = loop.time()
        _, _, item = await stream.next_event(timeout=5)
        assert item["data"]["lead_id"] == 1
        assert loop.time() - started < 2.5, "at most one heartbeat (1 s) and a read late"
        stream.close()


async def test_a_stream_token_expires_and_a_bad_one_is_401(app_url, firm):
    url, _ = app_url
    async with asyncio.timeout(20), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/v1/events/stream", params={"token": "lst_made_up"}) as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == "invalid_stream_token"
        async with http.get(f"{url}/v1/events/stream") as resp:
            assert resp.status == 401
        async with http.get(f"{url}/v1/events/stream", headers=firm.headers) as resp:
            assert resp.status == 401, "the API key is not a stream token"
        token = await stream_token(http, url, firm.headers)

        async def expired() -> bool:
            async with http.get(f"{url}/v1/events/stream", params={"token": token}) as resp:
                if resp.status == 200:
                    resp.close()
                    return False
                return resp.status == 401
        await wait_for(expired, timeout=8, interval=0.5, what="the 2 s token to expire")


async def test_a_malformed_or_pruned_cursor_is_refused_at_connect(app_url, firm, deps):
    from events.sweeps import prune_events

    url, _ = app_url
    async with asyncio.timeout(20), aiohttp.ClientSession() as http:
        for n in range(3):
            await _record(deps.pool, firm.id, n)
        await deps.pool.execute("UPDATE events SET at = now() - interval '30 days' WHERE firm_id = $1", firm.id)
        await prune_events(deps)
        token = await stream_token(http, url, firm.headers)
        async with http.get(f"{url}/v1/events/stream", params={"token": token},
                            headers={"Last-Event-ID": "1"}) as resp:
            assert resp.status == 410 and (await resp.json())["code"] == "cursor_expired"
        async with http.get(f"{url}/v1/events/stream", params={"token": token, "after": "1e3"}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == "invalid_cursor"
        async with http.get(f"{url}/v1/events", params={"after": "1"}, headers=firm.headers) as resp:
            assert resp.status == 410 and (await resp.json())["code"] == "cursor_expired"
        async with http.get(f"{url}/v1/events", params={"after": "-1"}, headers=firm.headers) as resp:
            assert resp.status == 400
        async with http.get(f"{url}/v1/events", headers=firm.headers) as resp:
            assert await resp.json() == {"items": [], "next": "3"}
        fresh = await open_stream(http, url, token)  # starting now is fine after a prune
        await _record(deps.pool, firm.id, 4, wake_redis=deps.redis)
        ident, _, item = await fresh.next_event()
        assert (ident, item["data"]["lead_id"]) == ("4", 4)
        fresh.close()


async def test_streams_beyond_streams_per_firm_get_429(app_url, firm, make_firm):
    url, _ = app_url
    other = await make_firm()
    async with asyncio.timeout(20), aiohttp.ClientSession() as http:
        streams = [await open_stream(http, url, await stream_token(http, url, firm.headers)) for _ in range(3)]
        async with http.get(f"{url}/v1/events/stream", params={"token": await stream_token(http, url, firm.headers)}) as resp:
            assert resp.status == 429 and (await resp.json())["code"] == "too_many_streams"
        theirs = await open_stream(http, url, await stream_token(http, url, other.headers))  # per firm
        streams[0].close()
        token = await stream_token(http, url, firm.headers)

        async def reopened():
            async with http.get(f"{url}/v1/events/stream", params={"token": token}) as resp:
                return resp.status == 200
        await wait_for(reopened, timeout=8, interval=0.3, what="a closed stream's slot to be freed")
        for s in streams[1:] + [theirs]:
            s.close()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def test_a_client_that_never_reads_is_disconnected_without_memory_growing(app_url, firm, deps):
    url, app = app_url
    hub = app[HUB]
    host, port = url.removeprefix("http://").split(":")
    async with asyncio.timeout(60), aiohttp.ClientSession() as http:
        token = await stream_token(http, url, firm.headers)
        reader, writer = await asyncio.open_connection(host, int(port))
        # a tiny receive window, and we never read: the web's writes back up at once
        writer.get_extra_info("socket").setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
        writer.write(f"GET /v1/events/stream?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await wait_for(lambda: asyncio.sleep(0, hub.stats()["clients"] == 1), timeout=5, what="the stream to open")
        before = _rss_mb()
        batch = 200
        for start in range(0, CLIENT_QUEUE_MAX * 3, batch):
            async with deps.pool.acquire() as conn:
                await events.record_many(conn, [(firm.id, "lead.updated", {"lead_id": n, "pad": "x" * 2000})
                                                for n in range(start, start + batch)])
            await events.wake(deps.redis, [firm.id])
            if hub.stats()["disconnected_slow"]:
                break
        await wait_for(lambda: asyncio.sleep(0, hub.stats()["disconnected_slow"] >= 1), timeout=20,
                       what="the slow client to be cut off")
        await wait_for(lambda: asyncio.sleep(0, hub.stats()["clients"] == 0), timeout=10, what="it to be gone")
        grown = _rss_mb() - before
        # bounded by one queue (CLIENT_QUEUE_MAX events of ~2 KB) and a socket buffer, not by the backlog
        assert grown < 40, f"the web grew by {grown:.1f} MB for one client that never reads"
        writer.close()


async def test_the_hubs_wakeup_listener_stays_subscribed_through_idle_time_longer_than_its_socket_timeout(
        deps, settings, capsys):
    """redis-py before 8.1 ends an idle `pubsub.listen()` with a TimeoutError after the
    client's socket_timeout: the listener restarted every few seconds, deaf for a second
    each time. With a 0.3 s socket timeout and 1.5 s of silence, a wake-up must still
    arrive at once and the listener must never have failed; and the hub must stop at once."""
    import redis.asyncio as aioredis

    from events.hub import Hub

    class Recording(Hub):
        def __init__(self, *args) -> None:
            super().__init__(*args)
            self.wakes: asyncio.Queue = asyncio.Queue()

        def wake(self, firm_ids: set[int]) -> None:
            self.wakes.put_nowait(set(firm_ids))
            super().wake(firm_ids)

    quick = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=0.3)
    hub = Recording(deps.pool, quick, 60)
    hub.clients[424242] = set()  # a firm with a stream open here
    hub.start()
    try:
        # subscribing wakes the hub's firms (for anything missed while not subscribed)
        assert await asyncio.wait_for(hub.wakes.get(), 5) == {424242}
        await asyncio.sleep(1.5)
        assert hub.wakes.empty()  # no second subscription in the silence: it never restarted
        await events.wake(deps.redis, [424242])
        assert await asyncio.wait_for(hub.wakes.get(), 0.5) == {424242}
        # and it stops at once: a cancel landing as a wake-up ends the reader's wait was
        # swallowed by asyncio.wait_for (Python 3.11), and the reader went on for a heartbeat
        async with asyncio.timeout(2):
            await hub.stop()
    finally:
        await hub.stop()
        await quick.aclose()
    assert "events_wakeup_listener_failed" not in capsys.readouterr().out
