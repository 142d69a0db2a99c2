"""The web's validation jobs, coalesced: many accepted signups, one `validate_lead` job.

Per request, the CRM hook used to enqueue one `validate_lead` job, and each job was a
Redis round trip in the web and a message, a dispatch and a transaction in the worker:
most of the worker's CPU per lead in a burst. Here the ids of the signups accepted while
an enqueue is in flight wait for it to finish (a Redis round trip at most) and go
together in the next job, `validate_lead(id, id, ...)`, up to `MAX_BATCH` ids each (a
signup alone still gets `validate_lead(id)`).

A request is answered once its job's enqueue was tried, as before; a broker failure is
logged and the lead stays `pending`, which the sweeper re-enqueues after `STALE_AFTER_S`.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

MAX_BATCH = 100
# Enqueues in flight at once: under load each takes what arrived during the previous one.
# One: a second sender halves the batches, and every batch is a job, a transaction and a
# Lookup job in the worker (`leadsms bench intake --import-rows 0`, four pairs back to
# back: 2 senders 305-339 leads/s to line type known and 1.48-1.71 ms worker CPU per
# lead; 1 sender 354-418/s and 1.17-1.44 ms). An enqueue is one Redis round trip.
MAX_SENDERS = 1


class ValidationBatcher:
    """One per web app (and event loop). `send(ids)` enqueues one job for the ids."""


    def __init__(self, send: Callable[[list[int]], Awaitable[None]], max_batch: int = MAX_BATCH,
                 max_senders: int = MAX_SENDERS) -> None:
        self._send = send
        self.max_batch = max_batch
        self.max_senders = max_senders
        self._waiting: list[tuple[int, asyncio.Future]] = []
        self._senders: set[asyncio.Task] = set()

    async def add(self, lead_id: int) -> None:
        """Enqueue the lead's validation with those arriving with it; returns once tried."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((lead_id, future))
        if len(self._senders) < self.max_senders:
            # A task: it runs after the requests already ready in this loop tick.
            sender = loop.create_task(self._send_all())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        await future

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
                ids = [lead_id for lead_id, _ in batch]
                try:
                    await self._send(ids)
                except Exception as exc:  # stored: the sweeper re-enqueues them after STALE_AFTER_S
                    log.warning("enqueue_failed", actor="validate_lead", leads=len(ids), first_lead_id=ids[0],
                                error=f"{type(exc).__name__}: {exc}")
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            # Leave the sender set in the step that found nothing waiting (see
            # webhooks/batcher.py: a done callback would run a tick too late).
            self._senders.discard(asyncio.current_task())  # type: ignore[arg-type]
