"""Queue operations: depths, dead letters, retry, purge (`leadsms queues`), for the broker.

dramatiq's Redis broker keeps, under its namespace (default "dramatiq"), per queue Q:
- `Q` a list of ready message ids, and `Q.msgs` a hash id -> message for every message
  not yet acked (ready or being processed), so in flight = HLEN(Q.msgs) - LLEN(Q);
- `Q.DQ` / `Q.DQ.msgs` the same for delayed messages (retries waiting out a backoff,
  `delay_ms` sends); a worker prefetches them into memory until their eta but they stay
  in `Q.DQ.msgs` until re-enqueued, so HLEN(Q.DQ.msgs) counts them all;
- `Q.XQ` a sorted set of dead-lettered ids scored by when they died, and `Q.XQ.msgs`
  their data (dramatiq drops them after 7 days).
(dramatiq/brokers/redis/dispatch.lua documents the layout.) dramatiq moves the message
*as it was enqueued* to the dead letters, without the error that killed it: the
`DeadLetterErrors` middleware (shared/broker.py), on the worker broker, writes the error
into that copy so `leadsms queues dead` can show it.

On a RabbitMQ broker only the counts are available (`get_queue_message_counts`);
listing, retrying and purging dead letters there are refused with one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import dramatiq
import structlog
from dramatiq.message import Message

from shared.broker import QUEUES, canonical_queue, is_redis, redis_keys
from shared.errors import AppError, ConfigError

log = structlog.get_logger(__name__)

# Options that belong to a failed delivery, dropped when a dead letter is retried.
_DELIVERY_OPTIONS = ("retries", "traceback", "requeue_timestamp", "eta", "last_error", "dead_at")

# Atomic move from the dead letters back onto the queue: no window where the message is
# in neither place (lost) or in both (run twice).
_RETRY_LUA = """
if redis.call('zrem', KEYS[1], ARGV[1]) == 1 then
  redis.call('hdel', KEYS[2], ARGV[1])
  redis.call('hset', KEYS[4], ARGV[1], ARGV[2])
  redis.call('rpush', KEYS[3], ARGV[1])
  return 1
end
return 0
"""
_PURGE_LUA = """
local n = redis.call('zcard', KEYS[1])
redis.call('del', KEYS[1], KEYS[2])
return n
"""
@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int  # ready, waiting for a worker
    in_flight: int | None  # taken by a worker, not yet acked (None: broker cannot say)
    delayed: int
    dead: int


@dataclass(frozen=True)
class DeadLetter:
    id: str  # the broker's id for this delivery (what `retry` takes)
    message_id: str
    queue: str
    actor: str
    args: list[Any]
    kwargs: dict[str, Any]
    retries: int
    dead_at: str | None  # ISO 8601, UTC
    error: str | None  # one line
    traceback: str | None


def known_queues(broker: Any) -> list[str]:
    """The platform's queues, then any other queue this process's broker declared."""
    declared = {canonical_queue(q) for q in getattr(broker, "get_declared_queues", lambda: set())()}
    return [*QUEUES, *sorted(declared - set(QUEUES))]


def queue_stats(broker: Any, queues: Iterable[str] | None = None) -> list[QueueStats]:
    """Counts per queue, read straight from the broker (sync I/O: web code runs it in a thread)."""
    names = list(queues) if queues is not None else known_queues(broker)
    if is_redis(broker):
        pipe = broker.client.pipeline(transaction=False)
        for name in names:
            k = redis_keys(broker, name)
            pipe.llen(k["q"])
            pipe.hlen(k["msgs"])
            pipe.hlen(k["dq_msgs"])
            pipe.zcard(k["xq"])
        raw = pipe.execute()
        out = []
        for i, name in enumerate(names):
            ready, held, delayed, dead = raw[4 * i: 4 * i + 4]
            out.append(QueueStats(name, int(ready), max(0, int(held) - int(ready)), int(delayed), int(dead)))
        return out
    if hasattr(broker, "get_queue_message_counts"):  # RabbitMQ
        return [QueueStats(name, *_rabbit_counts(broker, name)) for name in names]
    raise AppError(f"queue counts are not available for a {type(broker).__name__}", code="unsupported_broker")


def _rabbit_counts(broker: Any, name: str) -> tuple[int, None, int, int]:
    ready, delayed, dead = broker.get_queue_message_counts(name)
    return ready, None, delayed, dead


def _require_redis(broker: Any, what: str) -> None:
    if not is_redis(broker):
        raise AppError(f"{what} needs a Redis or RabbitMQ broker (BROKER_URL is {type(broker).__name__})",
                       code="unsupported_broker")


# ---- RabbitMQ: dramatiq dead-letters into `<queue>.XQ` (RabbitMQ's dead-letter routing) --

def is_rabbitmq(broker: Any) -> bool:
    return hasattr(broker, "get_queue_message_counts") and hasattr(broker, "channel")


def _rabbit_dead(broker: Any, queue: str) -> tuple[Any, list[tuple[int, float, bytes]]]:
    """Every dead letter of `queue` as (delivery tag, dead-at ms, body), oldest first, held
    unacknowledged on the returned channel: `_rabbit_release` puts back what is not acked."""
    from dramatiq.common import xq_name

    broker.declare_queue(queue)  # declares Q, Q.DQ and Q.XQ when this process has not yet
    channel = broker.channel
    held = []
    while True:
        method, properties, body = channel.basic_get(xq_name(queue), auto_ack=False)
        if method is None:
            break
        held.append((method.delivery_tag, _rabbit_dead_at(properties), body))
    return channel, held


def _rabbit_dead_at(properties: Any) -> float:
    deaths = ((getattr(properties, "headers", None) or {}).get("x-death") or [{}])
    when = deaths[0].get("time")
    return when.timestamp() * 1000 if hasattr(when, "timestamp") else time.time() * 1000


def _rabbit_release(channel: Any, tags: Iterable[int]) -> None:
    for tag in tags:
        channel.basic_nack(tag, requeue=True)


def _rabbit_list(broker: Any, queue: str, limit: int | None) -> list[DeadLetter]:
    channel, held = _rabbit_dead(broker, queue)
    try:
        letters = []
        for _tag, dead_at, body in held:
            msg = _decode(body)
            letters.append(_letter(queue, msg.message_id if msg else "", dead_at, msg))
        return letters[-limit:] if limit else letters
    finally:
        _rabbit_release(channel, [tag for tag, _, _ in held])


def _rabbit_retry(broker: Any, queue: str, wanted: set[str] | None) -> tuple[list[str], set[str]]:
    """Re-enqueue then ack each chosen dead letter: a crash in between leaves it in both
    places (run twice, which every handler tolerates), never in neither."""
    channel, held = _rabbit_dead(broker, queue)
    retried, matched, keep = [], set(), []
    try:
        for tag, _dead_at, body in held:
            msg = _decode(body)
            if msg is None or (wanted is not None and msg.message_id not in wanted):
                keep.append(tag)
                continue
            matched.add(msg.message_id)
            options = {key: v for key, v in msg.options.items() if key not in _DELIVERY_OPTIONS}
            broker.enqueue(Message(queue_name=queue, actor_name=msg.actor_name, args=msg.args, kwargs=msg.kwargs,
                                   options=options, message_id=msg.message_id,
                                   message_timestamp=int(time.time() * 1000)))
            channel.basic_ack(tag)
            retried.append(msg.message_id)
            log.info("dead_letter_retried", queue=queue, id=msg.message_id, actor=msg.actor_name)
    finally:
        _rabbit_release(channel, keep + [t for t, _, _ in held[len(retried) + len(keep):]])
    return retried, matched


def _rabbit_purge(broker: Any, queue: str) -> int:
    from dramatiq.common import xq_name

    broker.declare_queue(queue)
    return int(broker.channel.queue_purge(xq_name(queue)).method.message_count)


def _decode(raw: bytes | None) -> Message | None:
    if raw is None:
        return None
    try:
        return Message.decode(raw)
    except Exception:  # a message we cannot read is still listed, as unreadable
        return None


def _error_line(options: dict[str, Any]) -> str | None:
    if options.get("last_error"):
        return str(options["last_error"])
    lines = [ln for ln in str(options.get("traceback") or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else None


def _dead_entries(broker: Any, queue: str, limit: int | None = None) -> list[tuple[str, float, bytes | None]]:
    """(broker id, dead-at ms, stored data) of `queue`'s dead letters, oldest first."""
    k = redis_keys(broker, queue)
    entries = broker.client.zrange(k["xq"], -limit if limit else 0, -1, withscores=True)
    if not entries:
        return []
    datas = broker.client.hmget(k["xq_msgs"], [rid for rid, _ in entries])
    return [(rid.decode() if isinstance(rid, bytes) else str(rid), score, data)
            for (rid, score), data in zip(entries, datas)]


def _letter(queue: str, rid: str, score: float, msg: Message | None) -> DeadLetter:
    dead_at = datetime.fromtimestamp(score / 1000, timezone.utc).isoformat(timespec="seconds")
    if msg is None:
        return DeadLetter(rid, "", queue, "(unreadable)", [], {}, 0, dead_at,
                          "the stored message could not be decoded", None)
    options = dict(msg.options)
    return DeadLetter(id=rid, message_id=msg.message_id, queue=queue, actor=msg.actor_name,
                      args=list(msg.args), kwargs=dict(msg.kwargs), retries=int(options.get("retries", 0) or 0),
                      dead_at=dead_at, error=_error_line(options), traceback=options.get("traceback"))


def list_dead(broker: Any, queue: str, limit: int | None = None) -> list[DeadLetter]:
    """Dead letters of `queue`, oldest first (only the newest `limit` when given)."""
    if is_rabbitmq(broker):
        return _rabbit_list(broker, queue, limit)
    _require_redis(broker, "listing dead letters")
    return [_letter(queue, rid, score, _decode(data)) for rid, score, data in _dead_entries(broker, queue, limit)]


def retry_dead(broker: Any, queue: str, ids: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """Put dead letters back on `queue` (all when `ids` is None) with their retry count reset.

    `ids` may be broker ids or dramatiq message ids (on RabbitMQ they are the same).
    Returns (retried, not_found).
    """
    if is_rabbitmq(broker):
        wanted_ids = None if ids is None else set(ids)
        done, found = _rabbit_retry(broker, queue, wanted_ids)
        return done, sorted(wanted_ids - found) if wanted_ids is not None else []
    _require_redis(broker, "retrying dead letters")
    k = redis_keys(broker, queue)
    wanted = None if ids is None else set(ids)
    script = broker.client.register_script(_RETRY_LUA)
    retried, matched = [], set()
    for rid, _score, data in _dead_entries(broker, queue):
        msg = _decode(data)
        names = {rid} | ({msg.message_id} if msg is not None else set())
        if wanted is not None and not names & wanted:
            continue
        matched |= names
        if msg is None:
            log.warning("dead_letter_unreadable", queue=queue, id=rid)
            continue
        options = {key: v for key, v in msg.options.items() if key not in _DELIVERY_OPTIONS}
        options["redis_message_id"] = rid
        fresh = Message(queue_name=queue, actor_name=msg.actor_name, args=msg.args, kwargs=msg.kwargs,
                        options=options, message_id=msg.message_id, message_timestamp=int(time.time() * 1000))
        if script(keys=[k["xq"], k["xq_msgs"], k["q"], k["msgs"]], args=[rid, fresh.encode()]):
            retried.append(rid)
            log.info("dead_letter_retried", queue=queue, id=rid, actor=msg.actor_name)
    if retried and hasattr(broker, "wake"):  # shared/queue_wakeup.py: an idle worker takes them at once
        broker.wake(queue, len(retried))
    not_found = sorted(wanted - matched) if wanted is not None else []
    return retried, not_found


def purge_dead(broker: Any, queue: str) -> int:
    """Drop every dead letter of `queue`; returns how many there were."""
    if is_rabbitmq(broker):
        n = _rabbit_purge(broker, queue)
        log.info("dead_letters_purged", queue=queue, count=n)
        return n
    _require_redis(broker, "purging dead letters")
    k = redis_keys(broker, queue)
    n = broker.client.register_script(_PURGE_LUA)(keys=[k["xq"], k["xq_msgs"]])
    log.info("dead_letters_purged", queue=queue, count=int(n))
    return int(n)


# ---- the command ------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="leadsms queues", description="Queue depths, dead letters, retry.")
    p.add_argument("--json", action="store_true", dest="json_top", help="the queue table as JSON")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    t = sub.add_parser("list", help="the queue table (the default): depth, in flight, delayed, dead")
    t.add_argument("--json", action="store_true", dest="json_sub")
    d = sub.add_parser("dead", help="list a queue's dead letters (actor, arguments, last error)")
    d.add_argument("queue")
    d.add_argument("--json", action="store_true", dest="json_sub")
    d.add_argument("--traceback", action="store_true", help="print each full traceback")
    d.add_argument("--limit", type=int, default=100, help="show the newest N (default 100; 0 = all)")
    r = sub.add_parser("retry", help="re-enqueue dead letters (retry count reset)")
    r.add_argument("queue")
    r.add_argument("ids", nargs="*", metavar="ID", help="dead-letter ids (or message ids)")
    r.add_argument("--all", action="store_true", help="every dead letter of the queue")
    r.add_argument("--json", action="store_true", dest="json_sub")
    g = sub.add_parser("purge-dead", help="drop a queue's dead letters (asks first)")
    g.add_argument("queue")
    g.add_argument("--yes", action="store_true", help="do not ask")
    return p


def _check_queue(name: str) -> str:
    if not name or not all(c.isalnum() or c in "_-." for c in name) or name.endswith((".DQ", ".XQ")):
        raise AppError(f"{name!r} is not a queue name (known: {', '.join(QUEUES)})", code="bad_queue")
    return name


def _open_broker() -> dramatiq.Broker:
    from shared.broker import build_broker
    from shared.config import Settings
    from shared.logging import configure

    settings = Settings.from_env()
    if not settings.broker_url:
        raise ConfigError("BROKER_URL", "is not set (nor REDIS_URL)")
    configure(settings.log_format, settings.log_level)
    return build_broker(settings.broker_url)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(headers), *(fmt(r) for r in rows)])


def _run(args: argparse.Namespace, broker: dramatiq.Broker, out: Any) -> int:
    as_json = args.json_top or getattr(args, "json_sub", False)
    if args.action in (None, "list"):
        stats = queue_stats(broker, known_queues(broker))
        if as_json:
            print(json.dumps({"queues": [asdict(s) for s in stats]}), file=out)
        else:
            print(_table(("QUEUE", "DEPTH", "IN_FLIGHT", "DELAYED", "DEAD"),
                         [(s.queue, s.depth, "-" if s.in_flight is None else s.in_flight, s.delayed, s.dead)
                          for s in stats]), file=out)
        return 0
    queue = _check_queue(args.queue)
    if args.action == "dead":
        letters = list_dead(broker, queue, limit=max(0, args.limit) or None)
        if as_json:
            print(json.dumps({"queue": queue, "dead": [asdict(d) for d in letters]}), file=out)
            return 0
        if not letters:
            print(f"no dead letters on {queue}", file=out)
            return 0
        print(_table(("ID", "ACTOR", "ARGS", "RETRIES", "DEAD_AT", "LAST_ERROR"),
                     [(d.id, d.actor, _short(json.dumps(d.args)), d.retries, d.dead_at, _short(d.error or "-", 100))
                      for d in letters]), file=out)
        total = queue_stats(broker, [queue])[0].dead
        if total > len(letters):
            print(f"(the newest {len(letters)} of {total}: --limit 0 lists them all)", file=out)
        if args.traceback:
            for d in letters:
                print(f"\n--- {d.id} ({d.actor})\n{d.traceback or '(no traceback recorded)'}", file=out)
        return 0
    if args.action == "retry":
        if args.all == bool(args.ids):
            raise AppError("say which dead letters to retry: --all, or one or more IDs", code="bad_args")
        retried, missing = retry_dead(broker, queue, None if args.all else args.ids)
        if as_json:
            print(json.dumps({"queue": queue, "retried": retried, "not_found": missing}), file=out)
        else:
            print(f"retried {len(retried)} dead letter(s) on {queue}", file=out)
            for m in missing:
                print(f"not found: {m}", file=out)
        return 1 if missing else 0
    # purge-dead
    count = queue_stats(broker, [queue])[0].dead
    if not args.yes:
        if not sys.stdin.isatty():
            raise AppError("purge-dead asks before deleting: pass --yes when not at a terminal", code="needs_yes")
        answer = input(f"Delete {count} dead letter(s) from {queue}? Type the queue name to confirm: ")
        if answer.strip() != queue:
            print("nothing deleted", file=out)
            return 1
    print(f"deleted {purge_dead(broker, queue)} dead letter(s) from {queue}", file=out)
    return 0


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def main(args: argparse.Namespace) -> int:
    """`leadsms queues [ACTION …]`; `args.queue_args` holds the rest of the command line."""
    import redis.exceptions

    parsed = _parser().parse_args(list(getattr(args, "queue_args", None) or []))
    broker = _open_broker()
    try:
        return _run(parsed, broker, sys.stdout)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise AppError(f"cannot reach the broker: {type(exc).__name__}: {exc}", code="broker_unreachable") from exc
    finally:
        broker.close()
