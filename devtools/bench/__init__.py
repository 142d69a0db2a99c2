"""`leadsms bench all|send|floor|callbacks|intake|stream|webhooks|picker [options]`: the benchmarks.

Separate from `make test`: each scenario starts the real processes (cluster.py) against a
fresh database, drives them (load.py), counts CPU per process from /proc
(accounting.py), and prints one JSON line and a table (report.py). See
docs/benchmarks.md for what each figure means and the latest ones.

Like `shared/cli.py`, this is composition: it imports the domain packages it measures.
A new scenario is one entry in SCENARIOS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from devtools.bench import cluster as cl
from devtools.bench import report
from devtools.bench.callbacks import run_callbacks
from devtools.bench.floor import run_floor
from devtools.bench.intake import run_intake
from devtools.bench.picker import run_picker
from devtools.bench.send import run_send
from devtools.bench.stream import run_stream
from devtools.bench.webhooks import run_webhooks
from devtools.bench.system import Options, System
from shared.config import Settings


@dataclass(frozen=True)
class Scenario:
    run: Callable[..., Awaitable[dict[str, Any]]]
    # True: `run(system)` on the run's shared System (one database, one cluster);
    # False: `run(settings, services, opts, log_dir)` brings its own database and processes
    on_cluster: bool = True


# Every scenario, in the order `all` runs them: the cluster's first, then the others.
SCENARIOS: dict[str, Scenario] = {
    "send": Scenario(run_send),
    "floor": Scenario(run_floor),
    "callbacks": Scenario(run_callbacks),
    "intake": Scenario(run_intake),
    "stream": Scenario(run_stream),
    "webhooks": Scenario(run_webhooks),
    "picker": Scenario(run_picker, on_cluster=False),
}


def build_parser() -> argparse.ArgumentParser:
    d = Options(scenarios=[])
    p = argparse.ArgumentParser(prog="leadsms bench", description="Throughput and latency against the floor.")
    p.add_argument("scenarios", nargs="+", choices=("all", *SCENARIOS), metavar="SCENARIO",
                   help="all, or any of: " + ", ".join(SCENARIOS))
    p.add_argument("--n", type=int, default=d.n, help=f"sends at saturation, send and floor (default {d.n})")
    p.add_argument("--rate", type=float, default=d.rate, help=f"offered sends/s, fixed-load phase (default {d.rate:g})")
    p.add_argument("--duration", type=float, default=d.duration, help=f"seconds of fixed load (default {d.duration:g})")
    p.add_argument("--concurrency", type=int, default=d.concurrency, help=f"requests in flight at saturation (default {d.concurrency})")
    p.add_argument("--firms", type=int, default=d.firms)
    p.add_argument("--users", type=int, default=d.users, help="portal users per firm")
    p.add_argument("--conversations", type=int, default=d.conversations, help="conversations per firm")
    p.add_argument("--callbacks", type=int, default=d.callbacks, help=f"status callbacks (default {d.callbacks})")
    p.add_argument("--callback-concurrency", type=int, default=d.callback_concurrency)
    p.add_argument("--intake-rate", type=float, default=d.intake_rate, help=f"steady leads/s (default {d.intake_rate:g})")
    p.add_argument("--intake-duration", type=float, default=d.intake_duration)
    p.add_argument("--intake-bulk", type=int, default=d.intake_bulk, help=f"leads in the bulk phase (default {d.intake_bulk})")
    p.add_argument("--import-rows", type=int, default=d.import_rows,
                   help=f"rows of the `leadsms import` phase of intake, 0 to skip (default {d.import_rows})")
    p.add_argument("--picker-leads", type=int, default=d.picker_leads)
    p.add_argument("--picker-queries", type=int, default=d.picker_queries)
    p.add_argument("--floor-n", type=int, default=d.floor_n,
                   help=f"sends per side in the floor scenario (default {d.floor_n})")
    p.add_argument("--floor-rounds", type=int, default=d.floor_rounds,
                   help=f"interleaved send/floor rounds (default {d.floor_rounds})")
    p.add_argument("--floor-consumers", type=int, default=d.floor_consumers,
                   help=f"the floor's consumer tasks (default {d.floor_consumers}, as the worker's threads)")
    p.add_argument("--stream-clients", type=int, default=d.stream_clients, help=f"SSE clients (default {d.stream_clients})")
    p.add_argument("--stream-firms", type=int, default=d.stream_firms, help=f"firms they are spread over (default {d.stream_firms})")
    p.add_argument("--stream-rate", type=float, default=d.stream_rate, help=f"events/s committed (default {d.stream_rate:g})")
    p.add_argument("--stream-duration", type=float, default=d.stream_duration)
    p.add_argument("--webhook-events", type=int, default=d.webhook_events,
                   help=f"events at saturation, webhooks (default {d.webhook_events})")
    p.add_argument("--webhook-endpoints", type=int, default=d.webhook_endpoints,
                   help=f"endpoints (one per firm) the webhooks go to (default {d.webhook_endpoints})")
    p.add_argument("--webhook-rate", type=float, default=d.webhook_rate,
                   help=f"events/s of the fixed-rate phase (default {d.webhook_rate:g})")
    p.add_argument("--webhook-duration", type=float, default=d.webhook_duration)
    p.add_argument("--worker-threads", type=int, default=d.worker_threads)
    p.add_argument("--log-level", default=d.log_level, choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="of the processes under test (default INFO, as in production)")
    p.add_argument("--sweeper", action="store_true", help="also run `leadsms sweeper`")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the processes under test (repeatable), e.g. "
                        "--env dramatiq_worker_timeout=20")
    p.add_argument("--pg-url", default=None, help="PostgreSQL server to create the bench databases on")
    p.add_argument("--redis-url", default=None, help="a Redis db the bench owns (flushed); default db 6 locally")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="py-spy the web and worker during the send saturation phase, the callbacks blast and the intake bulk phase, into DIR")
    p.add_argument("--logs", default=None, metavar="DIR", help="where the processes' logs go")
    p.add_argument("--drain-timeout", type=float, default=d.drain_timeout)
    return p


def parse(argv: Sequence[str]) -> Options:
    ns = build_parser().parse_args(list(argv))
    wanted = SCENARIOS if "all" in ns.scenarios else tuple(ns.scenarios)
    fields = {k: v for k, v in vars(ns).items() if k not in ("scenarios", "env")}
    env = {}
    for item in ns.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"leadsms bench: --env wants NAME=VALUE, got {item!r}")
        env[name] = value
    fields["env"] = env
    return Options(scenarios=[s for s in SCENARIOS if s in wanted], **fields)


async def run(opts: Options) -> list[dict[str, Any]]:
    settings = Settings.from_env()
    services = await cl.resolve_services(settings, opts.pg_url, opts.redis_url)
    for note in services.notes:
        print(f"bench: {note}", file=sys.stderr)
    results: list[dict[str, Any]] = []

    async def measure(name: str, *args: Any) -> None:
        started = time.monotonic()
        result = await SCENARIOS[name].run(*args)
        results.append(report.finish(result, time.monotonic() - started))
        report.emit(result)
        sys.stdout.flush()

    try:
        on_cluster = [s for s in opts.scenarios if SCENARIOS[s].on_cluster]
        if on_cluster:
            async with System(opts, settings, services) as system:
                for name in on_cluster:
                    await measure(name, system)
        for name in opts.scenarios:
            if not SCENARIOS[name].on_cluster:
                log_dir = Path(opts.logs or (cl.DATA_DIR / "logs" / time.strftime(f"%Y%m%d-%H%M%S-{name}"))).resolve()
                await measure(name, settings, services, opts, log_dir)
    finally:
        services.stop()
    if results:
        print(report.summary(results))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry from `shared.cli` (the rest of the command line after the command word), or argv."""
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse(argv)
    from shared.logging import configure

    configure("console", "WARNING")
    results = asyncio.run(run(opts))
    # a missed target is a figure to read, not a failure of the command
    return 0 if results else 1
