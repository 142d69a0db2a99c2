"""The sweeper: the one periodic process (Procfile `clock`).

Each pass takes a PostgreSQL advisory lock, so however many sweepers run, one pass runs
at a time cluster-wide; a sweeper that does not get the lock skips that pass. The
feature packages provide the tasks (re-enqueue pending leads, queued messages and
unprocessed inbox rows; reconcile stale sends); `shared/app.py` hands them in.

Each task gets a time budget (`TASK_BUDGET_S`): a task still running when it runs out is
cancelled and recorded as `over_budget`, and the pass goes on to the next task, so a slow
Twilio (one task's list calls) cannot hold up the others (the inbox replay) for minutes.
Tasks are written so that a cancel loses nothing: what they did is committed, and what
they did not get to is still due at the next pass.

The sweeper's own task, `prune_passes`, deletes the pass records (`sweeper_passes`, one
per pass) older than PASSES_RETENTION, a small batch at a time.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Mapping

import structlog

from shared.db import SWEEPER_LOCK_KEY
from shared.deps import Deps

log = structlog.get_logger(__name__)

SweepTask = Callable[[Deps], Awaitable[Any]]

# Per task and pass: two Twilio client timeouts, a few times the default pass interval.
TASK_BUDGET_S = 20.0
PASSES_RETENTION = timedelta(days=1)
PRUNE_BATCH = 500
PRUNE_BATCHES = 20


class Sweeper:
    def __init__(self, deps: Deps, tasks: Mapping[str, SweepTask], *, name: str | None = None,
                 task_budget_s: float = TASK_BUDGET_S) -> None:
        self.deps = deps
        self.tasks = dict(tasks)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.task_budget_s = task_budget_s

    async def run_pass(self) -> dict[str, Any] | None:
        """One pass under the cluster-wide lock; None when another sweeper holds it."""
        async with self.deps.pool.acquire() as conn:
            conn.keep_session_state()  # the lock is the session's: released by the reset too
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEPER_LOCK_KEY)
            if not got:
                log.debug("sweep_skipped_lock_held")
                return None
            try:
                started = datetime.now(timezone.utc)
                summary: dict[str, Any] = {}
                for task_name, task in self.tasks.items():
                    try:
                        summary[task_name] = await self._run_task(task_name, task)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # one failing task must not stop the others
                        log.exception("sweep_task_failed", task=task_name)
                        summary[task_name] = {"error": type(exc).__name__}
                finished = datetime.now(timezone.utc)
                await conn.execute(
                    "INSERT INTO sweeper_passes (host_pid, started_at, finished_at, summary) VALUES ($1, $2, $3, $4)",
                    self.name, started, finished, summary,
                )
                if any(v for v in summary.values()):
                    log.info("sweep_pass", **{k: v for k, v in summary.items() if v})
                return summary
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", SWEEPER_LOCK_KEY)

    async def _run_task(self, task_name: str, task: SweepTask) -> Any:
        """The task's result, or `{"error": "over_budget"}` when it ran out of time."""
        deadline = asyncio.get_running_loop().time() + self.task_budget_s
        try:
            async with asyncio.timeout_at(deadline) as scope:
                return await task(self.deps)
        except TimeoutError:
            if not scope.expired():  # the task's own timeout, not the budget
                raise
            log.warning("sweep_task_over_budget", task=task_name, budget_s=self.task_budget_s)
            return {"error": "over_budget"}

    async def run_forever(self, interval_s: float, stop: asyncio.Event | None = None) -> None:
        """A pass every `interval_s`, counted from the start of the last one (a pass that
        took longer than that is followed at once): what a pass does is due at most one
        interval late, however long its tasks take (a scheduled send, say)."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        log.info("sweeper_started", interval_s=interval_s, tasks=list(self.tasks))
        while not stop.is_set():
            started = loop.time()
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database restarting: keep going, next pass retries
                log.warning("sweep_pass_failed", error=f"{type(exc).__name__}: {exc}")
            try:
                async with asyncio.timeout_at(started + interval_s):  # not wait_for: it can swallow a cancel
                    await stop.wait()
            except TimeoutError:
                pass


async def in_batches(delete_batch: Callable[[int], Awaitable[int]], batch: int, batches: int) -> int:
    """Run `delete_batch(batch)` (one short statement, returning how many rows it deleted)
    until it deletes fewer than `batch`, at most `batches` times; how many in all."""
    deleted = 0
    for _ in range(batches):
        n = await delete_batch(batch)
        deleted += n
        if n < batch:
            break
    return deleted


async def prune_passes(deps: Deps, *, batch: int = PRUNE_BATCH, batches: int = PRUNE_BATCHES) -> int:
    """Delete pass records older than PASSES_RETENTION, oldest first, a batch at a time; how many."""

    async def delete_batch(limit: int) -> int:
        rows = await deps.pool.fetch(
            """
            DELETE FROM sweeper_passes
            WHERE id IN (SELECT id FROM sweeper_passes WHERE started_at < now() - $1::interval
                         ORDER BY started_at LIMIT $2)
            RETURNING id
            """,
            PASSES_RETENTION, limit,
        )
        return len(rows)

    return await in_batches(delete_batch, batch, batches)


SWEEPS: dict[str, SweepTask] = {"prune_passes": prune_passes}
