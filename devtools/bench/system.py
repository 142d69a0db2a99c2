"""One benchmark run's system: a fresh database, seeded firms, the cluster, and helpers the
scenarios share (meters, the simulator's receipts, resets between phases).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from devtools.bench import cluster as cl
from devtools.bench.accounting import Meter
from devtools.bench.seed import BenchFirm, seed_firms
from devtools.local_services import create_database, drop_database
from shared.config import Settings


@dataclass
class Options:
    scenarios: list[str]
    n: int = 20_000
    rate: float = 100.0
    duration: float = 20.0
    concurrency: int = 64
    firms: int = 20
    users: int = 5
    conversations: int = 50
    callbacks: int = 10_000
    callback_concurrency: int = 64
    intake_rate: float = 50.0
    intake_duration: float = 20.0
    intake_bulk: int = 3_000
    import_rows: int = 20_000
    picker_leads: int = 1_000_000
    picker_queries: int = 400
    floor_n: int = 10_000
    floor_rounds: int = 4
    floor_consumers: int = 8
    stream_clients: int = 1000
    stream_firms: int = 200
    stream_rate: float = 200.0
    stream_duration: float = 20.0
    webhook_events: int = 10_000
    webhook_endpoints: int = 8
    webhook_rate: float = 100.0
    webhook_duration: float = 20.0
    pg_url: str | None = None
    redis_url: str | None = None
    worker_threads: int = Settings.worker_threads  # the processes under test run as in production
    log_level: str = Settings.log_level
    sweeper: bool = False
    profile: str | None = None
    logs: str | None = None
    drain_timeout: float = 300.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class System:
    opts: Options
    settings: Settings
    services: cl.Services
    db_name: str = ""
    dsn: str = ""
    cluster: cl.Cluster | None = None
    firms: list[BenchFirm] = field(default_factory=list)
    log_dir: Path = Path()
    _http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "System":
        from shared.db import migrate

        self.log_dir = Path(self.opts.logs or (cl.DATA_DIR / "logs" / time.strftime("%Y%m%d-%H%M%S"))).resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.db_name, self.dsn = await create_database(self.services.admin_dsn, prefix="leadsms_bench_")
        try:
            await migrate(self.dsn)
            await cl.flush_redis(self.services.redis_url)
            conn = await asyncpg.connect(self.dsn)
            try:
                self.firms = await seed_firms(conn, firms=self.opts.firms, users=self.opts.users,
                                              conversations=self.opts.conversations)
            finally:
                await conn.close()
            self.cluster = cl.Cluster(self.settings, self.dsn, self.services.redis_url, self.log_dir,
                                      worker_threads=self.opts.worker_threads, log_level=self.opts.log_level,
                                      env_overrides=dict(self.opts.env))
            await self.cluster.start(sweeper=self.opts.sweeper)
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._http is not None:
            await self._http.close()
        if self.cluster is not None:
            await self.cluster.stop_all()
        if self.db_name:
            await drop_database(self.services.admin_dsn, self.db_name)

    # ---- shared helpers ---------------------------------------------------------------------

    def meter(self, *names: str, groups: dict[str, int] | None = None) -> Meter:
        assert self.cluster is not None
        chosen = dict(self.cluster.groups(*names)) if names else {}
        chosen.update(groups or {})
        return Meter(chosen, backend_pids=cl.backend_pids_of(self.dsn),
                     redis_cpu=cl.redis_cpu_of(self.services.redis_url))

    @property
    def sim_url(self) -> str:
        assert self.cluster is not None
        return self.cluster.sim_url

    @property
    def web_url(self) -> str:
        assert self.cluster is not None
        return self.cluster.web_url

    async def sim_reset(self) -> None:
        assert self._http is not None
        async with self._http.post(f"{self.sim_url}/sim/reset") as resp:
            resp.raise_for_status()

    async def sim_created(self) -> int:
        assert self._http is not None
        async with self._http.get(f"{self.sim_url}/sim/counters") as resp:
            return int((await resp.json())["messages_created"])

    async def sim_receipts(self) -> dict[int, float]:
        """Our message id -> when the simulator created it (epoch seconds), from the create
        attempts it recorded (their StatusCallback URL carries `?m=<id>`)."""
        assert self._http is not None
        async with self._http.get(f"{self.sim_url}/sim/messages") as resp:
            data = await resp.json()
        out: dict[int, float] = {}
        for attempt in data.get("attempts", []):
            if attempt.get("outcome") != "created":
                continue
            callback = attempt.get("status_callback") or ""
            _, _, m = callback.partition("?m=")
            if m.isdigit():
                out[int(m)] = datetime.fromisoformat(attempt["at"]).timestamp()
        return out

    async def sql(self, query: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def fresh_phase(self) -> None:
        """Between phases: no messages and an empty simulator, so each phase starts from
        the same tables. (Redis is left alone: the broker's bookkeeping lives there.)"""
        await self.sql("TRUNCATE messages, twilio_inbox RESTART IDENTITY")
        await self.sql("UPDATE conversations SET last_message_at = NULL")
        await self.sim_reset()


def warmup_count(n: int) -> int:
    """Requests sent before a measurement (connections, prepared statements, first-use
    imports): 50, fewer for a tiny run."""
    return max(5, min(50, n // 10))


def cores() -> int:
    return os.cpu_count() or 1


async def wait_for_count(current: Any, target: int, *, stall_s: float, timeout: float,
                         interval: float = 0.05) -> tuple[int, bool]:
    """Poll `current()` until it reaches `target`. Gives up when it has not moved for
    `stall_s` or after `timeout`; returns (last count, reached)."""
    last = -1
    moved_at = time.monotonic()
    deadline = moved_at + timeout
    while True:
        value = await current()
        now = time.monotonic()
        if value >= target:
            return value, True
        if value != last:
            last, moved_at = value, now
        if now - moved_at > stall_s or now > deadline:
            return value, False
        await asyncio.sleep(interval)
