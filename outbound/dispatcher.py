"""The dispatcher: in each `deliveries` worker process, turns new events into drains.

Event writers publish a wake-up after their commit (events.wake); the dispatcher listens
on that channel, fans the woken firms' events out (fanout.py) and takes lanes for the
endpoints that got deliveries. It is only the fast path: a lost wake-up (Redis hiccup,
a bulk import's commit) is found by the sweeper's fan-out on its next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from events.log import WAKE_CHANNEL
from outbound import delivery, fanout, queries
from outbound.actors import start_drains
from shared import deps
from shared.broker import DELIVERIES_QUEUE

log = structlog.get_logger(__name__)

POLL_S = 1.0


async def catch_up(current: deps.Deps) -> None:
    """Fan out every firm's new events and start drains for whatever is due."""
    await fanout.fan_out(current, None)
    await start_drains(current, await queries.endpoints_with_due(current.pool, 500))


async def run(stop: asyncio.Event) -> None:
    """Listen, fan out, start drains, until `stop`."""
    while not stop.is_set():
        current = deps.current()
        pubsub = current.redis.pubsub()
        try:
            await pubsub.subscribe(WAKE_CHANNEL)
            await catch_up(current)  # whatever came before this subscription
            log.info("webhook_dispatcher_listening")
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                firms: set[int] = set()
                while message is not None:
                    data = message.get("data")
                    if isinstance(data, bytes):
                        firms.update(int(f) for f in data.decode().split(",") if f.isdigit())
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                if firms:
                    created = await fanout.fan_out(current, sorted(firms))
                    for endpoint_id, n in sorted(created.items()):
                        # a drain lingering here takes them; a burst also gets the other lane
                        handed = delivery.hand_to_lingering(endpoint_id)
                        want = min(2, n) - (1 if handed else 0)
                        if want > 0:
                            await start_drains(current, [endpoint_id], want=want)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis or PostgreSQL restarting: the sweeper covers, retry soon
            log.warning("webhook_dispatcher_error", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(POLL_S)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


class Dispatcher(Middleware):
    """Starts `run` on dramatiq's event loop in a worker that consumes `deliveries`."""

    def __init__(self) -> None:
        self.task: Any = None
        self.stop: asyncio.Event | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        queues = getattr(worker, "consumer_whitelist", None)
        if queues and DELIVERIES_QUEUE not in queues:
            return
        thread = get_event_loop_thread()
        if thread is None:
            return
        loop = thread.loop

        async def start() -> None:
            self.stop = asyncio.Event()
            self.task = asyncio.ensure_future(run(self.stop))

        asyncio.run_coroutine_threadsafe(start(), loop).result(5)
        log.info("webhook_dispatcher_started")

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        thread = get_event_loop_thread()
        if self.task is None or thread is None:
            return

        async def halt() -> None:
            assert self.stop is not None
            self.stop.set()
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(halt(), thread.loop).result(5)
