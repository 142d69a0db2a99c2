"""One stream reader per web process, fanning events out in memory to its clients.

The table is the truth. The reader keeps, per firm with an open stream here, the last
cursor it has handed out, and reads the events after it when a Redis wake-up names the
firm, and for every firm on each heartbeat (so a lost wake-up costs at most one
heartbeat). One query serves every firm woken at once.

Each client has a bounded queue. A client whose queue is full (it stopped reading) is
disconnected: its handler task is cancelled, so the web's memory per client stays
bounded; the client resumes by cursor. A client drops events it already has (its own
catch-up from the table may overlap what the reader hands it), so it sees each exactly once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog

from events import queries
from events.log import WAKE_CHANNEL
from events.service import item_text

log = structlog.get_logger(__name__)

CLIENT_QUEUE_MAX = 1000  # events waiting for one client before it is disconnected
READ_BATCH = 500  # events per firm per read
LISTEN_WAIT_S = 1.0  # the wake-up listener's longest wait for a message before it waits again


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    text: str  # the feed item as JSON


@dataclass(eq=False)
class Client:
    firm_id: int
    task: asyncio.Task | None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE_MAX))
    dropped: bool = False

    def offer(self, event: Event) -> bool:
        """Queue the event; False (and the client is cut off) when its queue is full."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.dropped = True
            if self.task is not None:
                self.task.cancel()
            return False


class Hub:
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, heartbeat_s: float) -> None:
        self.pool = pool
        self.redis = redis
        self.heartbeat_s = heartbeat_s
        self.clients: dict[int, set[Client]] = {}
        self.position: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.woken = asyncio.Event()
        self.delivered = 0
        self.disconnected_slow = 0
        self._tasks: list[asyncio.Task] = []

    # ---- clients ------------------------------------------------------------------------

    async def subscribe(self, firm_id: int) -> Client:
        """A new client of the firm. Events after the hub's position for the firm are
        handed to it; everything before that the client reads from the table itself."""
        start = None
        if firm_id not in self.position:
            start = (await queries.last_seqs(self.pool, [firm_id]))[firm_id]
        client = Client(firm_id, asyncio.current_task())
        if firm_id not in self.position:  # (re-checked: the await above let others in)
            self.position[firm_id] = start
        self.clients.setdefault(firm_id, set()).add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        group = self.clients.get(client.firm_id)
        if group is None:
            return
        group.discard(client)
        if not group:
            del self.clients[client.firm_id]
            self.position.pop(client.firm_id, None)
            self.dirty.discard(client.firm_id)

    def close_all(self) -> int:
        """End every open stream now (the web is shutting down): each handler is cancelled,
        its client sees the connection end and resumes by cursor on another web. Without
        this a stream holds the shutdown for the whole grace period. Returns how many."""
        closed = 0
        for group in list(self.clients.values()):
            for client in list(group):
                if client.task is not None and not client.task.done():
                    client.task.cancel()
                    closed += 1
        return closed

    def wake(self, firm_ids: set[int]) -> None:
        self.dirty |= firm_ids
        self.woken.set()

    # ---- the reader ---------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="events-hub-listen"),
                       asyncio.create_task(self._read_loop(), name="events-hub-read")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self) -> None:
        """Redis wake-ups: each names firms with new events. Reconnects after a failure."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(WAKE_CHANNEL)
                self.wake(set(self.clients))  # anything missed while not subscribed
                while True:
                    # Not `pubsub.listen()`: before redis-py 8.1 it ends an idle wait with a
                    # TimeoutError after the client's socket_timeout, and the listener
                    # restarted (and paused) every few seconds when nothing happened.
                    message = await pubsub.get_message(timeout=LISTEN_WAIT_S)
                    if message is None or message.get("type") != "message":
                        continue
                    raw = message["data"]
                    raw = raw.decode() if isinstance(raw, bytes) else str(raw)
                    firms = {int(f) for f in raw.split(",") if f.isdigit()}
                    if firms & self.clients.keys():
                        self.wake(firms & self.clients.keys())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("events_wakeup_listener_failed", error=type(exc).__name__)
                await asyncio.sleep(1)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    async def _read_loop(self) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
                # that lands as the wait ends (a wake-up at shutdown), and the loop went
                # on for another heartbeat
                async with asyncio.timeout(self.heartbeat_s):
                    await self.woken.wait()
            except TimeoutError:
                self.dirty |= set(self.clients)  # the heartbeat poll: covers lost wake-ups
            self.woken.clear()
            firms = sorted(f for f in self.dirty if f in self.position)
            self.dirty.clear()
            if not firms:
                continue
            try:
                await self.read_and_fan_out(firms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarting: the next wake-up or heartbeat retries
                log.warning("events_read_failed", error=f"{type(exc).__name__}: {exc}")
                self.dirty |= set(firms)
                await asyncio.sleep(0.5)

    async def read_and_fan_out(self, firms: list[int]) -> None:
        afters = [self.position[f] for f in firms]
        rows = await queries.events_after_many(self.pool, firms, afters, READ_BATCH)
        counts: dict[int, int] = {}
        for row in rows:
            firm_id = row["firm_id"]
            counts[firm_id] = counts.get(firm_id, 0) + 1
            if firm_id not in self.position or row["seq"] <= self.position[firm_id]:
                continue  # unsubscribed meanwhile, or already handed out
            self.position[firm_id] = row["seq"]
            event = Event(row["seq"], row["type"], item_text(row))
            for client in list(self.clients.get(firm_id, ())):
                if client.offer(event):
                    self.delivered += 1
                else:
                    self.disconnected_slow += 1
                    log.info("stream_client_too_slow", firm_id=firm_id)
                    self.unsubscribe(client)
        full = {f for f, n in counts.items() if n >= READ_BATCH}
        if full:  # more waiting: read again at once
            self.wake(full)

    def stats(self) -> dict[str, Any]:
        return {"clients": sum(len(g) for g in self.clients.values()), "firms": len(self.clients),
                "delivered": self.delivered, "disconnected_slow": self.disconnected_slow}
