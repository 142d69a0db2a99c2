"""HTTP of the change feed: `GET /v1/events`, `POST /v1/stream-tokens`, `GET /v1/events/stream`.

The stream is authenticated by a stream token in the query (browsers cannot set headers
on an EventSource), never by the API key, so its path is exempt from the API-key
middleware. The token is never logged: error logs carry the path without its query.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator

import structlog
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from events import queries, service
from events.hub import Hub
from shared.web import DEPS, FIRM_ID, OPEN_PATHS, json_response, query_limit

log = structlog.get_logger(__name__)

HUB = web.AppKey("events_hub", Hub)
STREAM_PATH = "/v1/events/stream"
LIVENESS_CHECK_S = 1.0  # how often an idle stream checks that its client is still there


async def feed(request: web.Request) -> web.Response:
    page = await service.feed_page(request.app[DEPS].pool, request[FIRM_ID], request.query.get("after"),
                                   query_limit(request, service.FEED_DEFAULT_LIMIT, service.FEED_MAX_LIMIT))
    return json_response(page)


async def stream_token(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    token = await service.issue_stream_token(deps.redis, request[FIRM_ID], deps.settings.stream_token_ttl_s)
    return json_response(token, status=201)


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events of the firm's feed: catch-up from the cursor (`Last-Event-ID`
    wins over `?after=`), then live events from the process's reader, heartbeats between."""
    deps = request.app[DEPS]
    settings = deps.settings
    firm_id = await service.firm_for_stream_token(deps.redis, request.query.get("token"))
    structlog.contextvars.bind_contextvars(firm_id=firm_id)
    raw_after = request.headers.get("Last-Event-ID") or request.query.get("after") or None
    after = service.parse_cursor(raw_after)
    newest = await service.check_cursor(deps.pool, firm_id, after)
    heartbeat = settings.stream_heartbeat_s
    lease = heartbeat * 3
    slot = await service.take_stream_slot(deps.redis, firm_id, settings.streams_per_firm, lease)
    hub = request.app[HUB]
    client = None
    resp = None
    try:
        client = await hub.subscribe(firm_id)
        last = newest if after is None else after
        resp = EventSourceResponse(ping_interval=heartbeat)
        await resp.prepare(request)
        log.info("stream_opened", after=last)
        # catch-up from the table; the reader's events for this client queue meanwhile
        while True:
            rows = await queries.events_after(deps.pool, firm_id, last, service.FEED_MAX_LIMIT)
            for row in rows:
                await resp.send(service.item_text(row), id=str(row["seq"]), event=row["type"])
                last = row["seq"]
            if len(rows) < service.FEED_MAX_LIMIT:
                break
        renew_at = time.monotonic() + heartbeat
        while True:
            try:
                async with asyncio.timeout(LIVENESS_CHECK_S):  # not wait_for: it can swallow a cancel
                    event = await client.queue.get()
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    break  # the client went away
                if time.monotonic() >= renew_at:
                    await service.renew_stream_slot(deps.redis, firm_id, slot, lease)
                    renew_at = time.monotonic() + heartbeat
                continue
            if event.seq <= last:
                continue  # already sent by the catch-up
            await resp.send(event.text, id=str(event.seq), event=event.type)
            last = event.seq
    except ConnectionResetError:
        pass  # the client went away mid-write
    except asyncio.CancelledError:
        if client is not None and client.dropped:
            log.info("stream_dropped_slow_client")
        raise
    finally:
        if client is not None:
            hub.unsubscribe(client)
        if resp is not None and resp.prepared:
            resp.stop_streaming()  # the heartbeat task
            with contextlib.suppress(Exception):
                await resp.wait()
        try:
            await asyncio.shield(service.release_stream_slot(deps.redis, firm_id, slot))
        except Exception:
            pass  # the lease expires on its own
    return resp


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/events", feed)
    app.router.add_post("/v1/stream-tokens", stream_token)
    app.router.add_get(STREAM_PATH, stream)
    app[OPEN_PATHS].add(STREAM_PATH)

    async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
        deps = app[DEPS]
        hub = Hub(deps.pool, deps.redis, deps.settings.stream_heartbeat_s)
        app[HUB] = hub
        hub.start()
        yield
        await hub.stop()

    app.cleanup_ctx.append(hub_ctx)

    async def close_streams(app: web.Application) -> None:
        # on_shutdown runs after the listener closed and before aiohttp waits for handlers
        closed = app[HUB].close_all()
        if closed:
            log.info("streams_closed_for_shutdown", count=closed)

    app.on_shutdown.append(close_streams)
