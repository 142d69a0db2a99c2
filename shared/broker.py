"""The dramatiq broker: built once from `BROKER_URL`, with async actors.

Actors are declared with `shared.broker.actor` instead of `dramatiq.actor`. They start
bound to a placeholder `StubBroker`, so importing an actor module never connects
anywhere; `install(broker)` binds every declared actor to the real broker. This lets
the web app, the worker, the sweeper and the tests each pick their broker at start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
import traceback as tb
from typing import Any, Callable
from urllib.parse import urlsplit

import dramatiq
import structlog
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, CurrentMessage, MiddlewareError
from dramatiq.middleware import Middleware

from shared.config import Settings

log = structlog.get_logger(__name__)

QUEUES = ("intake", "lookup", "send", "status", "inbound", "ops", "deliveries")
# Outbound webhook deliveries wait on other people's servers (up to their timeout), so
# they never share a worker with the send path: `leadsms worker` without `--queues`
# consumes every queue but this one, and `leadsms worker --queues deliveries` (the
# Procfile's `deliveries`) consumes it.
DELIVERIES_QUEUE = "deliveries"
DEFAULT_WORKER_QUEUES = tuple(q for q in QUEUES if q != DELIVERIES_QUEUE)

_declared: list[dramatiq.Actor] = []
_placeholder: dramatiq.Broker | None = None
_installed: dramatiq.Broker | None = None


def _add_standard_middleware(broker: dramatiq.Broker) -> None:
    names = {type(m).__name__ for m in broker.middleware}
    if "AsyncIO" not in names:
        broker.add_middleware(AsyncIO())
    if "CurrentMessage" not in names:
        broker.add_middleware(CurrentMessage())


def _current_broker() -> dramatiq.Broker:
    global _placeholder
    if _installed is not None:
        return _installed
    if _placeholder is None:
        _placeholder = StubBroker()
        _add_standard_middleware(_placeholder)
    return _placeholder


def actor(**options: Any) -> Callable[[Callable[..., Any]], dramatiq.Actor]:
    """`dramatiq.actor` bound to the installed broker (or the placeholder until then)."""

    def decorate(fn: Callable[..., Any]) -> dramatiq.Actor:
        declared = dramatiq.actor(fn, broker=_current_broker(), **options)
        _declared.append(declared)
        return declared

    return decorate


def install(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Make `broker` the global broker and bind every declared actor to it."""
    global _installed
    _add_standard_middleware(broker)
    _installed = broker
    dramatiq.set_broker(broker)
    for declared in _declared:
        declared.broker = broker
        broker.declare_actor(declared)
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def build_broker(url: str, *, middleware: list[Middleware] | None = None) -> dramatiq.Broker:
    """A RedisBroker or RabbitmqBroker for `url`, with the project's middleware."""
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        from shared.queue_wakeup import WakingRedisBroker

        # Its enqueues wake idle consumers, which wait instead of polling (shared/queue_wakeup.py).
        broker: dramatiq.Broker = WakingRedisBroker(url=url, socket_connect_timeout=2, socket_timeout=10)
    elif scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    else:  # Settings already validated the scheme; this is a programming error.
        raise ValueError(f"unsupported broker URL scheme {scheme!r}")
    for m in middleware or ():
        broker.add_middleware(m)
    _add_standard_middleware(broker)
    return broker


# actor.send is synchronous network I/O: web handlers call it off the event loop, on a
# small dedicated pool so a slow broker cannot starve the default executor.
_send_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="enqueue")


async def enqueue(actor_: dramatiq.Actor, *args: Any, delay_ms: int | None = None) -> None:
    """Send a message to `actor_` from async code. A RedisBroker is driven on the loop
    (`shared.async_enqueue`: the same messages, no thread hop); others through the pool."""
    from shared import async_enqueue

    if async_enqueue.supports(actor_.broker):
        await async_enqueue.enqueue(actor_, *args, delay_ms=delay_ms or None)
        return
    loop = asyncio.get_running_loop()
    options = {"delay": delay_ms} if delay_ms else {}
    await loop.run_in_executor(_send_pool, lambda: actor_.send_with_options(args=args, **options))


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached (used by /readyz)."""
    client = getattr(broker, "client", None)
    if client is not None:  # RedisBroker
        client.ping()
        return
    parameters = getattr(broker, "parameters", None)
    if parameters is not None:  # RabbitmqBroker: one URLParameters, or a list of them
        import pika

        candidates = parameters if isinstance(parameters, (list, tuple)) else [parameters]
        errors = []
        for p in candidates:
            try:  # a real AMQP handshake: credentials and vhost checked, not just the port
                pika.BlockingConnection(p).close()
                return
            except Exception as exc:
                errors.append(f"{p.host}:{p.port}: {type(exc).__name__}")
        raise ConnectionError("RabbitMQ unreachable (" + "; ".join(errors) + ")")
    # StubBroker: always reachable.


# ---- dead letters ------------------------------------------------------------------------
# dramatiq's Redis layout per queue Q (dispatch.lua): `Q` ready ids, `Q.msgs` every unacked
# message, `Q.DQ(.msgs)` delayed, `Q.XQ(.msgs)` dead-lettered. `ops/queues.py` reads it.

_NOTE_LUA = """
if redis.call('hexists', KEYS[1], ARGV[1]) == 1 then
  redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


def canonical_queue(queue: str) -> str:
    return queue[:-3] if queue.endswith(".DQ") else queue


def redis_keys(broker: Any, queue: str) -> dict[str, str]:
    base = f"{broker.namespace}:{queue}"
    return {"q": base, "msgs": f"{base}.msgs", "dq_msgs": f"{base}.DQ.msgs",
            "xq": f"{base}.XQ", "xq_msgs": f"{base}.XQ.msgs"}


def is_redis(broker: Any) -> bool:
    return hasattr(broker, "client") and hasattr(broker, "namespace")


class DeadLetterErrors(Middleware):
    """Writes why a message died into its dead-letter copy (error line, traceback, when).

    dramatiq's nack moves the stored message as first enqueued, so without this the
    dead letters would not say what failed. Best effort: never breaks the worker.
    """

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        if not is_redis(broker):
            return
        try:
            options = dict(message.options)
            exc = getattr(message, "_exception", None)
            if exc is not None:
                options["last_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                options["traceback"] = "".join(tb.format_exception(exc, limit=30))[-8000:]
            options["dead_at"] = int(time.time() * 1000)
            data = message._message.copy(options=options).encode()
            rid = options.get("redis_message_id")
            if rid:
                key = redis_keys(broker, canonical_queue(message.queue_name))["xq_msgs"]
                broker.client.eval(_NOTE_LUA, 1, key, rid, data)
        except Exception as exc:  # pragma: no cover - best effort
            log.debug("dead_letter_note_failed", error=f"{type(exc).__name__}: {exc}")


class DepsBootError(MiddlewareError):
    """The worker could not open its database, Redis or Twilio client: do not boot."""


class WorkerDeps(Middleware):
    """Opens the worker's deps on dramatiq's event loop; closes them at shutdown.

    Must come after `AsyncIO` in the middleware list, whose `before_worker_boot` starts
    the loop this one runs on.
    """

    def __init__(self, settings: Settings, *, pool_size: int | None = None) -> None:
        self.settings = settings
        self.pool_size = pool_size

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        from shared import deps

        thread = get_event_loop_thread()
        if thread is None:
            raise DepsBootError("the AsyncIO middleware must come before WorkerDeps")
        size = self.pool_size or max(2, min(20, getattr(worker, "worker_threads", 8) + 2))
        try:
            opened = thread.run_coroutine(deps.open_deps(self.settings, pool_size=size))
        except Exception as exc:  # any failure here must stop the boot, loudly
            raise DepsBootError(f"cannot open worker dependencies: {type(exc).__name__}: {exc}") from exc
        deps.set_current(opened)
        log.info("worker_deps_open", pid=os.getpid(), pool_size=size)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        from shared import deps

        thread = get_event_loop_thread()
        current = deps._current
        if thread is not None and current is not None:
            try:
                thread.run_coroutine(deps.close_deps(current))
            except Exception:
                log.warning("worker_deps_close_failed", exc_info=True)
        deps.set_current(None)


class ZeroSeries(Middleware):
    """Creates dramatiq's exporter series of every actor at 0 when a worker process boots.

    dramatiq's Prometheus middleware makes a series on its first event, so on a healthy
    system "errors", "retries" and "dead-lettered" had no series at all (the dashboard
    showed "No data", and `rate()` has nothing to start from when the first one comes).
    Runs at worker boot, after `Prometheus.after_process_boot` made the counters (dramatiq
    emits `after_*` hooks in reverse middleware order, so process boot would be too early).
    """

    def __init__(self, prometheus: Middleware) -> None:
        self.prometheus = prometheus

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        names = ("total_messages", "total_errored_messages", "total_retried_messages", "total_rejected_messages")
        counters = [getattr(self.prometheus, n, None) for n in names]
        for actor_name in broker.get_declared_actors():
            queue = broker.get_actor(actor_name).queue_name
            for counter in counters:
                if counter is not None:
                    counter.labels(queue, actor_name)


def worker_broker(settings: Settings) -> dramatiq.Broker:
    """The broker of a worker process: project middleware, deps opened at boot."""
    settings.require("broker_url")

    extra: list[Middleware] = [DeadLetterErrors()]
    if settings.worker_metrics_port:
        from dramatiq.middleware.prometheus import Prometheus

        prometheus = Prometheus()
        extra += [prometheus, ZeroSeries(prometheus)]
    broker = build_broker(settings.broker_url, middleware=extra)
    broker.add_middleware(WorkerDeps(settings))
    return broker
