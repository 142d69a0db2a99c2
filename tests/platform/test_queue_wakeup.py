"""An idle Redis consumer waits for a wake-up instead of polling (shared/queue_wakeup.py):
real Redis, dramatiq's own consumer under ours, its fetches counted."""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from shared import async_enqueue
from shared.queue_wakeup import IDLE_WAIT_S, TOKENS_CAP, WakingRedisBroker, wake_key

NAMESPACE = "wakeup-test"  # no session worker consumes it
# Woken, not timed out: the waits below start 0.1 s before the send, so a consumer that
# was not woken returns IDLE_WAIT_S - 0.1 s after it (a loaded machine adds tens of ms).
AT_ONCE_S = IDLE_WAIT_S / 2
QUEUE = "wakeup"


class CountingFetches:
    """Wraps the broker's `do_fetch` (dramatiq's Lua `fetch`) and counts its calls."""

    def __init__(self, broker: RedisBroker) -> None:
        self.calls = 0
        self._fetch = broker.do_fetch
        broker.do_fetch = self  # instance attribute: dramatiq resolves do_* via __getattr__

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self._fetch(*args)


@pytest.fixture
def broker(services):
    broker = WakingRedisBroker(url=services.redis_url, namespace=NAMESPACE)
    broker.declare_queue(QUEUE)
    yield broker
    broker.flush_all()
    broker.close()


def _next_in_thread(consumer) -> dict[str, Any]:
    """next(consumer) in a thread (the worker's consumer thread does the same)."""
    out: dict[str, Any] = {}

    def run() -> None:
        out["message"] = next(consumer)
        out["at"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    out["thread"] = thread
    return out


def _actor(broker):
    @dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name="wakeup_probe")
    def probe(n: int) -> None:  # never run: the test reads the message off the consumer
        pass
    return probe


def test_an_idle_consumer_fetches_about_once_a_second_not_ten_times(broker):
    consumer = broker.consume(QUEUE, prefetch=2, timeout=100)  # the worker's 100 ms
    fetches = CountingFetches(broker)
    started = time.monotonic()
    while time.monotonic() - started < 2.0:
        assert next(consumer) is None
    # dramatiq's own consumer at 100 ms fetches ~20 times in 2 s; ours waits IDLE_WAIT_S
    assert fetches.calls <= 2.0 / IDLE_WAIT_S + 2, fetches.calls


def test_a_message_sent_to_an_idle_consumer_wakes_it_at_once(broker):
    probe = _actor(broker)
    consumer = broker.consume(QUEUE, prefetch=2, timeout=100)
    assert next(consumer) is None  # now idle: the next call waits on the wake list
    waiting = _next_in_thread(consumer)
    time.sleep(0.1)
    sent_at = time.monotonic()
    probe.send(1)
    waiting["thread"].join(5)
    assert waiting["message"] is not None and waiting["message"].args == (1,)
    assert waiting["at"] - sent_at < AT_ONCE_S, f"picked up {waiting['at'] - sent_at:.3f} s after the send"


async def test_the_webs_async_enqueue_wakes_an_idle_consumer_too(broker):
    probe = _actor(broker)
    consumer = broker.consume(QUEUE, prefetch=2, timeout=100)
    assert next(consumer) is None
    waiting = _next_in_thread(consumer)
    time.sleep(0.1)
    sent_at = time.monotonic()
    await async_enqueue.enqueue(probe, 2)
    waiting["thread"].join(5)
    assert waiting["message"] is not None and waiting["message"].args == (2,)
    assert waiting["at"] - sent_at < AT_ONCE_S, f"picked up {waiting['at'] - sent_at:.3f} s after the send"


def test_a_message_that_comes_without_a_token_is_still_fetched_within_the_idle_wait(broker, services):
    plain = RedisBroker(url=services.redis_url, namespace=NAMESPACE)  # an enqueue that wakes nobody
    try:
        probe = _actor(plain)
        consumer = broker.consume(QUEUE, prefetch=2, timeout=100)
        assert next(consumer) is None
        sent_at = time.monotonic()
        probe.send(3)
        message = None
        while message is None and time.monotonic() - sent_at < 5:
            message = next(consumer)
        assert message is not None and message.args == (3,)
        assert time.monotonic() - sent_at < IDLE_WAIT_S + 0.3
    finally:
        plain.close()


def test_a_burst_keeps_at_most_the_cap_of_tokens(broker):
    probe = _actor(broker)
    for n in range(TOKENS_CAP * 3):
        probe.send(n)
    assert broker.client.llen(wake_key(NAMESPACE, QUEUE)) == TOKENS_CAP


def test_a_stopping_worker_wakes_its_waiting_consumers_and_they_wait_no_more(broker):
    consumer = broker.consume(QUEUE, prefetch=2, timeout=100)
    assert next(consumer) is None
    waiting = _next_in_thread(consumer)
    time.sleep(0.1)
    stop_at = time.monotonic()
    broker.emit_before("worker_shutdown", None)  # what dramatiq's Worker.stop does first
    waiting["thread"].join(5)
    assert waiting["at"] - stop_at < AT_ONCE_S, f"woke {waiting['at'] - stop_at:.3f} s after the stop began"
    started = time.monotonic()
    assert next(consumer) is None
    assert time.monotonic() - started < 0.2  # dramatiq's short sleep, no wait on the list
