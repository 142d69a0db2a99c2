"""The sweeper: the one periodic process (Procfile `clock`).

Each pass takes a PostgreSQL advisory lock, so however many sweepers run, one pass runs
at a time cluster-wide; a sweeper that does not get the lock skips that pass. The
feature packages provide the tasks (re-enqueue pending leads, queued messages and
unprocessed inbox rows; reconcile stale sends); `shared/app.py` hands them in.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping

import structlog

from shared.db import SWEEPER_LOCK_KEY
from shared.deps import Deps

log = structlog.get_logger(__name__)

SweepTask = Callable[[Deps], Awaitable[Any]]


class Sweeper:
    def __init__(self, deps: Deps, tasks: Mapping[str, SweepTask], *, name: str | None = None) -> None:
        self.deps = deps
        self.tasks = dict(tasks)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"

    async def run_pass(self) -> dict[str, Any] | None:
        """One pass under the cluster-wide lock; None when another sweeper holds it."""
        async with self.deps.pool.acquire() as conn:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEPER_LOCK_KEY)
            if not got:
                log.debug("sweep_skipped_lock_held")
                return None
            try:
                started = datetime.now(timezone.utc)
                summary: dict[str, Any] = {}
                for task_name, task in self.tasks.items():
                    try:
                        summary[task_name] = await task(self.deps)
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

    async def run_forever(self, interval_s: float, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        log.info("sweeper_started", interval_s=interval_s, tasks=list(self.tasks))
        while not stop.is_set():
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database restarting: keep going, next pass retries
                log.warning("sweep_pass_failed", error=f"{type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except asyncio.TimeoutError:
                pass
