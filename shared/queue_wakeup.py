"""Idle Redis consumers wait for a wake-up instead of polling.

dramatiq's Redis consumer has no blocking fetch: an idle one runs the `fetch` script and
sleeps up to the worker timeout, again and again. `leadsms worker` consumes 12 queues
(6 and their `.DQ` delay queues), so at the 100 ms it needs for a quick pickup an idle
worker ran ~120 fetches a second: about 6 % of a core doing nothing.

Here every enqueue also pushes a token onto the queue's wake list (`<ns>:<queue>.wake`,
kept to `TOKENS_CAP` entries), and a consumer with nothing fetched and nothing in hand
waits in `BLPOP` on that list for up to `IDLE_WAIT_S` before fetching again. A token wakes
one waiting consumer at once (sooner than the old poll); the wait's timeout is the
fallback for a message that arrives without one (dramatiq's own requeue of a dead
worker's messages, an older producer): it is picked up within `IDLE_WAIT_S`, as before
within the poll interval. The token is a hint, never the message: losing one delays, it
does not lose.

A consumer that holds messages (a delayed message waiting for its `eta`, or prefetched
work) keeps dramatiq's short sleep, so nothing it must act on waits behind a `BLPOP`.
When a worker stops, its consumers are woken through a key of their own and wait no more,
so a stop takes no longer than before. dramatiq runs its queue maintenance (requeueing a
dead worker's messages) on a random share of fetches; idle consumers now fetch about ten
times less often, so that share is ten times dramatiq's default.
"""

from __future__ import annotations

from typing import Any, Mapping

import redis
import structlog
from dramatiq.brokers.redis import DEFAULT_MAINTENANCE_CHANCE, RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware

log = structlog.get_logger(__name__)

IDLE_WAIT_S = 1.0  # an idle consumer's longest wait: the pickup of a message without a token
TOKENS_CAP = 16  # wake-ups kept per queue: enough for every consumer of a burst to wake
POLL_S = 0.1  # the poll interval this replaces (`dramatiq_worker_timeout` of `leadsms worker`)


def wake_key(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{queue_name}.wake"


def push_wakeups(pipe: Any, namespace: str, counts: Mapping[str, int]) -> None:
    """Add to a Redis pipeline (sync or async) the tokens for `counts` {queue: messages}."""
    for queue_name, count in counts.items():
        key = wake_key(namespace, queue_name)
        pipe.lpush(key, *([1] * max(1, min(count, TOKENS_CAP))))
        pipe.ltrim(key, 0, TOKENS_CAP - 1)


class WakingConsumer(_RedisConsumer):
    """dramatiq's Redis consumer, waiting on the queue's wake list when idle."""

    def __init__(self, broker: RedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self.wake_key = wake_key(broker.namespace, queue_name)
        self.idle = False

    def __next__(self) -> Any:
        broker = self.broker
        if self.idle and not broker.stopping and not self.message_cache and self.outstanding_message_count == 0:
            try:
                broker.client.blpop([self.wake_key, broker.stop_key], timeout=IDLE_WAIT_S)
            except redis.ConnectionError as exc:
                raise ConnectionClosed(exc) from None
            self.misses = 0  # woken (or timed out): fetch at once, short backoff if empty
        message = super().__next__()
        self.idle = message is None and self.outstanding_message_count == 0
        return message


class WakingRedisBroker(RedisBroker):
    """A RedisBroker whose enqueues wake an idle consumer of the queue."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("maintenance_chance", int(DEFAULT_MAINTENANCE_CHANCE * IDLE_WAIT_S / POLL_S))
        super().__init__(**options)
        self.stopping = False
        self.stop_key = f"{self.namespace}:wake-stop.{self.broker_id}"
        self.add_middleware(WakeOnShutdown())

    def stop_waiting(self) -> None:
        """A worker is stopping: no consumer of this broker waits on a wake list again, and
        each one waiting now is woken (one token each, on this broker's own key)."""
        self.stopping = True
        consumers = len(self.queues) + len(self.delay_queues)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.lpush(self.stop_key, *([1] * max(1, consumers)))
            pipe.expire(self.stop_key, 60)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("queue_wakeup_stop_failed", error=f"{type(exc).__name__}: {exc}")

    @property
    def consumer_class(self) -> type:
        return WakingConsumer

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        enqueued = super().enqueue(message, delay=delay)
        self.wake(enqueued.queue_name)
        return enqueued

    def wake(self, queue_name: str, count: int = 1) -> None:
        """Best effort: a lost token only means the consumer's timeout picks the message up."""
        try:
            pipe = self.client.pipeline(transaction=False)
            push_wakeups(pipe, self.namespace, {queue_name: count})
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("queue_wakeup_failed", queue=queue_name, error=f"{type(exc).__name__}: {exc}")


class WakeOnShutdown(Middleware):
    """Wakes the worker's waiting consumers as its shutdown begins."""

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        if isinstance(broker, WakingRedisBroker):
            broker.stop_waiting()
