"""Enqueue on a RedisBroker from the event loop, without a thread hop.

`dramatiq`'s `actor.send` is synchronous Redis I/O, so web code ran it in a thread pool:
in the profile that pool (message build, sync Lua dispatch, the GIL hand-offs between the
pool thread and the loop) was ~15-23% of the web's Python time. This module does exactly
what `RedisBroker.enqueue` does (dramatiq 2.x: a copy of the message with a fresh
`redis_message_id`, `eta` and the `.DQ` queue when delayed, the broker's
`before_enqueue`/`after_enqueue` middleware hooks, then the `dispatch` Lua script's
`enqueue` command with the same ARGV, plus the wake-up tokens of
`shared.queue_wakeup.WakingRedisBroker.enqueue`) through a `redis.asyncio` client on the
running loop, so a real dramatiq worker consumes these messages as its own. `enqueue_many` sends a
batch in one pipelined round trip (the webhook group commit).

Only RedisBroker is handled here; `shared.broker.enqueue` keeps the thread pool for others.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections import Counter
from typing import Any, Iterable, Sequence
from uuid import uuid4

import dramatiq
import redis.asyncio as aioredis
from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST, MAINTENANCE_SCALE, RedisBroker
from dramatiq.common import current_millis, dq_name
from redis.exceptions import NoScriptError

from shared.queue_wakeup import push_wakeups

# One async client per (broker, event loop): a redis.asyncio connection belongs to the loop
# that opened it (the web has one loop; the tests' session loop; a worker its AsyncIO loop).
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _AsyncDispatch]]" = weakref.WeakKeyDictionary()

_CONNECTIONS = {
    "Connection": aioredis.Connection,
    "SSLConnection": aioredis.SSLConnection,
    "UnixDomainSocketConnection": aioredis.UnixDomainSocketConnection,
}


def supports(broker: dramatiq.Broker) -> bool:
    """True when `broker` is a RedisBroker whose connection settings we can mirror."""
    if not isinstance(broker, RedisBroker):
        return False
    pool = getattr(broker.client, "connection_pool", None)
    return pool is not None and pool.connection_class.__name__ in _CONNECTIONS


class _AsyncDispatch:
    """The broker's `dispatch` script on an async client of the same Redis server and db."""

    def __init__(self, broker: RedisBroker) -> None:
        pool = broker.client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs.setdefault("socket_connect_timeout", 2)
        kwargs.setdefault("socket_timeout", 10)
        self.broker = broker
        self.client = aioredis.Redis(connection_pool=aioredis.ConnectionPool(
            connection_class=_CONNECTIONS[pool.connection_class.__name__], max_connections=32, **kwargs))
        script = broker.scripts["dispatch"]
        self.script_text = script.script
        self.sha = script.sha
        self.max_unpack: int | None = None

    async def _max_unpack_size(self) -> int:
        if self.max_unpack is None:
            # Computed once per process by dramatiq (class-level cache; a sync script call
            # the first time): run it off the loop.
            loop = asyncio.get_running_loop()
            self.max_unpack = await loop.run_in_executor(None, self.broker._max_unpack_size)
        return self.max_unpack

    def _argv(self, queue_name: str, max_unpack: int, redis_message_id: str, data: bytes) -> list[Any]:
        # Same ARGV as RedisBroker._dispatch("enqueue")(queue_name, id, data).
        command = "enqueue"
        maintenance = int(command not in MAINTENANCE_COMMAND_BLACKLIST
                          and random.randint(1, MAINTENANCE_SCALE) <= self.broker.maintenance_chance)
        return [command, current_millis(), queue_name, self.broker.broker_id, self.broker.heartbeat_timeout,
                self.broker.dead_message_ttl, maintenance, max_unpack, redis_message_id, data]

    async def dispatch(self, calls: Sequence[tuple[str, str, bytes]]) -> None:
        """Run `enqueue` for each (queue_name, redis_message_id, data), one round trip."""
        max_unpack = await self._max_unpack_size()
        namespace = self.broker.namespace
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for queue_name, redis_id, data in calls:
                pipe.evalsha(self.sha, 1, namespace, *self._argv(queue_name, max_unpack, redis_id, data))
            # and wake idle consumers of those queues (shared/queue_wakeup.py)
            push_wakeups(pipe, namespace, Counter(queue_name for queue_name, _, _ in calls))
            try:
                await pipe.execute()
                return
            except NoScriptError:
                # A fresh (or flushed) Redis: no call of the batch ran. Load and go again.
                if attempt == 2:
                    raise
                await self.client.script_load(self.script_text)


def _dispatcher(broker: RedisBroker) -> _AsyncDispatch:
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    found = per_loop.get(id(broker))
    if found is None or found.broker is not broker:
        found = per_loop[id(broker)] = _AsyncDispatch(broker)
    return found


def _prepare(actor_: dramatiq.Actor, args: tuple, delay_ms: int | None) -> tuple[dramatiq.Message, str]:
    """What RedisBroker.enqueue builds before dispatching: (message, queue_name)."""
    message = actor_.message_with_options(args=args)
    queue_name = message.queue_name
    message = message.copy(options={"redis_message_id": str(uuid4())})
    if delay_ms is not None:
        queue_name = dq_name(queue_name)
        message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay_ms})
    return message, queue_name


async def enqueue_many(broker: RedisBroker, jobs: Iterable[tuple[dramatiq.Actor, tuple]],
                       *, delay_ms: int | None = None) -> list[dramatiq.Message]:
    """Enqueue every (actor, args) in one Redis round trip; the messages as enqueued.

    Middleware hooks run as in `RedisBroker.enqueue`: every `before_enqueue` before the
    round trip, every `after_enqueue` after it (none when it raised)."""
    prepared = [_prepare(actor_, tuple(args), delay_ms) for actor_, args in jobs]
    if not prepared:
        return []
    for message, _ in prepared:
        broker.emit_before("enqueue", message, delay_ms)
    await _dispatcher(broker).dispatch(
        [(queue, message.options["redis_message_id"], message.encode()) for message, queue in prepared])
    for message, _ in prepared:
        broker.emit_after("enqueue", message, delay_ms)
    return [message for message, _ in prepared]


async def enqueue(actor_: dramatiq.Actor, *args: Any, delay_ms: int | None = None) -> dramatiq.Message:
    """One message: `actor_.send_with_options(args=args, delay=delay_ms)` on the loop."""
    broker = actor_.broker
    assert isinstance(broker, RedisBroker)
    return (await enqueue_many(broker, [(actor_, args)], delay_ms=delay_ms))[0]
