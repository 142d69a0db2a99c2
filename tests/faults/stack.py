"""A whole leadsms deployment as real processes: the Twilio simulator, `leadsms web`,
workers and a sweeper, each a subprocess with its own log file.

A fault scenario kills, restarts and starves these processes (and the private servers of
servers.py under them) and then reads the simulator (what Twilio received: the witness)
and PostgreSQL (what we recorded). Logs are kept for the secrets-in-logs check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import asyncpg

from shared.config import Settings
from shared.db import migrate
from tests.faults.servers import PrivatePostgres, PrivateRedis
from tests.support import create_database, free_port, leadsms_command, spawn, stop_process

SID = "AC" + "f" * 32


class Stack:
    def __init__(self, database_url: str, redis_url: str, log_dir: Path, **overrides: Any) -> None:
        self.log_dir = log_dir
        self.web_port, self.sim_port, self.metrics_port = free_port(), free_port(), free_port()
        self.token = "tok_" + secrets.token_hex(16)  # distinctive, so a leak is found by grep
        values: dict[str, Any] = dict(
            database_url=database_url, redis_url=redis_url, broker_url=redis_url,
            twilio_account_sid=SID, twilio_auth_token=self.token,
            twilio_base_url=f"http://127.0.0.1:{self.sim_port}",
            public_base_url=f"http://127.0.0.1:{self.web_port}", port=self.web_port, metrics_port=self.metrics_port,
            worker_metrics_port=0, retry_min_backoff_ms=100, retry_max_backoff_ms=2000,
            sweep_interval_s=1, stale_after_s=2, twilio_timeout_s=3, send_rate_limit=100_000, log_format="json", log_level="INFO",
        )
        values.update(overrides)
        self.settings = Settings(**values)
        self.procs: dict[str, list[subprocess.Popen]] = {}
        self.sim = f"http://127.0.0.1:{self.sim_port}"
        self.web = self.settings.public_base_url
        self.metrics = f"http://127.0.0.1:{self.settings.metrics_port}"

    # ---- processes ---------------------------------------------------------------------

    def env(self, **extra: Any) -> dict[str, str]:
        env = self.settings.to_env()
        env.update({"WORKER_PROCESSES": "1", "WORKER_THREADS": "8", "WORKER_METRICS_PORT": "0"})
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def _spawn(self, role: str, args: list[str], **extra: Any) -> subprocess.Popen:
        n = len(self.procs.get(role, []))
        proc = spawn(args, self.env(**extra), self.log_dir / f"{role}-{n}.log")
        self.procs.setdefault(role, []).append(proc)
        return proc

    async def start_sim(self) -> None:
        self._spawn("sim", leadsms_command("twilio-sim", "--port", str(self.sim_port), "--callback-delay", "0.05"))
        await self.wait_http(f"{self.sim}/sim/healthz")

    async def start_web(self) -> subprocess.Popen:
        proc = self._spawn("web", leadsms_command("web"))
        await self.wait_http(f"{self.web}/healthz")
        return proc

    async def start_another_web(self) -> str:
        """One more `leadsms web` on the same database and broker, on free ports (its own
        PORT and METRICS_PORT); its base URL. Twilio's callbacks still go to PUBLIC_BASE_URL."""
        port = free_port()
        self._spawn("web", leadsms_command("web"), PORT=port, METRICS_PORT=free_port())
        url = f"http://127.0.0.1:{port}"
        await self.wait_http(f"{url}/healthz")
        return url

    def start_worker(self, *queues: str, **extra: Any) -> subprocess.Popen:
        return self._spawn("worker", leadsms_command("worker", *(["--queues", *queues] if queues else [])), **extra)

    def start_sweeper(self, **extra: Any) -> subprocess.Popen:
        return self._spawn("sweeper", leadsms_command("sweeper"), **extra)

    def alive(self, role: str) -> list[subprocess.Popen]:
        return [p for p in self.procs.get(role, []) if p.poll() is None]

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL the process and its children (a worker's forked processes too)."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for role in ("web", "worker", "sweeper", "sim"):
            for proc in self.procs.get(role, []):
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGTERM)
                stop_process(proc, timeout=10)

    async def wait_http(self, url: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while True:
                try:
                    async with s.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status < 500:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} did not come up in {timeout}s; logs in {self.log_dir}")
                await asyncio.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    # ---- the simulator -----------------------------------------------------------------

    async def sim_get(self, path: str, **params: str) -> Any:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{self.sim}{path}", params=params or None) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

    async def sim_config(self, **config: Any) -> dict:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{self.sim}/sim/config", json=config) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

    async def witness(self) -> "Witness":
        return Witness((await self.sim_get("/sim/messages"))["messages"])


class Witness:
    """What the simulator created, counted per our message id (the `?m=` of each
    message's StatusCallback) and per (to, body)."""

    def __init__(self, messages: list[dict]) -> None:
        self.messages = messages
        self.per_id: Counter[int] = Counter()
        for m in messages:
            url = m.get("status_callback") or ""
            if "?m=" in url:
                self.per_id[int(url.rsplit("?m=", 1)[1])] += 1
        self.per_to_body: Counter[tuple[str, str]] = Counter((m["to"], m["body"]) for m in messages)

    @property
    def duplicated(self) -> int:
        """Extra copies Twilio received: sum over ids of (count - 1)."""
        return sum(n - 1 for n in self.per_id.values() if n > 1)

    def sid_of(self) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for m in self.messages:
            url = m.get("status_callback") or ""
            if "?m=" in url:
                out.setdefault(int(url.rsplit("?m=", 1)[1]), set()).add(m["sid"])
        return out


@contextlib.asynccontextmanager
async def private_stack(tmp: Path, **overrides: Any) -> AsyncIterator[tuple[Stack, PrivatePostgres, PrivateRedis]]:
    """A private PostgreSQL and Redis, a migrated database, the simulator and the web
    process started; workers and sweepers are started by the scenario."""
    pg, rd = PrivatePostgres(), PrivateRedis()
    stack = None
    try:
        _, dsn = await create_database(pg.admin_dsn)
        await migrate(dsn)
        stack = Stack(dsn, rd.url, tmp, **overrides)
        await stack.start_sim()
        await stack.start_web()
        yield stack, pg, rd
    finally:
        if stack is not None:
            stack.stop_all()
        pg.remove()
        rd.remove()


async def connect(stack: Stack) -> asyncpg.Connection:
    return await asyncpg.connect(stack.settings.database_url)
