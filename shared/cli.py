"""The `leadsms` command (docs/cli.md).

Each command checks only the variables it needs; a bad or missing one prints one line
naming it and exits 2. Commands owned by a package are thin calls into it, imported by
name inside the command so that `leadsms web` does not load the benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from typing import Sequence

from firms import cli as firms_cli
from intake import offboarding as intake_offboarding
from outbound import cli as outbound_cli
from shared.config import Settings
from shared.errors import AppError, ConfigError
from shared.logging import configure

EXIT_CONFIG = 2


def _settings(command: str) -> Settings:
    settings = Settings.for_command(command)
    configure(settings.log_format, settings.log_level)
    return settings


# ---- migrate ---------------------------------------------------------------------------

def cmd_migrate(args: argparse.Namespace) -> int:
    from shared.db import migrate

    settings = _settings("migrate")
    applied = asyncio.run(migrate(settings.database_url))
    print(json.dumps({"applied": applied}))
    return 0


# ---- web ---------------------------------------------------------------------------------

def cmd_web(args: argparse.Namespace) -> int:
    from shared.app import create_app, create_metrics_app
    from shared.web import serve

    settings = _settings("web")
    port = args.port or settings.port
    if settings.metrics_port and settings.metrics_port == port:
        raise ConfigError("METRICS_PORT", f"must differ from PORT ({port}), or be 0 to serve /metrics on PORT")

    async def run() -> None:
        # The app is built on the running loop: its cleanup_ctx opens the deps there.
        app = create_app(settings)
        listeners = [(app, args.host, port)]
        if settings.metrics_port:
            # Its own listener, off the public port Twilio reaches (firewall it, or bind
            # it with --metrics-host 127.0.0.1 when the scraper runs on this host).
            listeners.append((create_metrics_app(app), args.metrics_host, settings.metrics_port))
        await serve(listeners)

    asyncio.run(run())
    return 0


# ---- worker ------------------------------------------------------------------------------

def worker_argv(settings: Settings, queues: Sequence[str] | None = None) -> list[str]:
    argv = [sys.executable, "-m", "dramatiq", "shared.worker",
            "--processes", str(settings.worker_processes),
            "--threads", str(settings.worker_threads),
            "--worker-shutdown-timeout", "10000"]
    from shared.broker import DEFAULT_WORKER_QUEUES

    argv += ["--queues", *(queues or DEFAULT_WORKER_QUEUES)]
    return argv


def worker_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    # A Redis consumer holding messages (delayed, prefetched) polls every worker_timeout ms;
    # an idle one waits for a wake-up instead (shared/queue_wakeup.py).
    env.setdefault("dramatiq_worker_timeout", "100")
    if settings.worker_metrics_port:
        env["dramatiq_prom_port"] = str(settings.worker_metrics_port)
        env.setdefault("dramatiq_prom_host", "127.0.0.1")
        # One multiprocess-metrics folder per worker, emptied at start: the shared default
        # would sum counters from earlier runs into this one.
        prom_db = env.setdefault("dramatiq_prom_db", f"{tempfile.gettempdir()}/leadsms-prom-{settings.worker_metrics_port}")
        shutil.rmtree(prom_db, ignore_errors=True)
        os.makedirs(prom_db, exist_ok=True)
    return env


def cmd_worker(args: argparse.Namespace) -> int:
    from shared.broker import DELIVERIES_QUEUE, QUEUES

    settings = _settings("worker")
    settings.require("broker_url")
    for queue in args.queues or ():
        if queue not in QUEUES:
            raise ConfigError("--queues", f"names an unknown queue {queue!r} (known: {', '.join(QUEUES)})")
    if args.queues and DELIVERIES_QUEUE in args.queues and "send" in args.queues:
        raise ConfigError("--queues", f"must not put {DELIVERIES_QUEUE!r} with 'send': outbound webhooks wait on "
                                      "other servers, so they run in a worker of their own")
    argv = worker_argv(settings, args.queues)
    os.execvpe(argv[0], argv, worker_env(settings))
    return 0  # not reached


# ---- sweeper -----------------------------------------------------------------------------

async def run_sweeper(settings: Settings, *, once: bool = False) -> None:
    from shared import broker as brokers
    from shared.app import sweep_tasks
    from shared.deps import close_deps, open_deps
    from shared.sweeper import Sweeper

    brokers.install(brokers.build_broker(settings.broker_url))
    deps = await open_deps(settings, pool_size=4)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        sweeper = Sweeper(deps, sweep_tasks())
        if once:
            await sweeper.run_pass()
        else:
            await sweeper.run_forever(settings.sweep_interval_s, stop)
    finally:
        await close_deps(deps)


def cmd_sweeper(args: argparse.Namespace) -> int:
    settings = _settings("sweeper")
    settings.require("broker_url")
    asyncio.run(run_sweeper(settings, once=args.once))
    return 0


# ---- commands owned by feature packages -------------------------------------------------

def cmd_twilio_sim(args: argparse.Namespace) -> int:
    from devtools.twilio_sim import cli

    return cli.main(args)


def cmd_import(args: argparse.Namespace) -> int:
    from intake import importer

    return importer.cmd_import(args)


def cmd_optouts(args: argparse.Namespace) -> int:
    from consent import optout_list

    return optout_list.cmd_optouts(args)


def cmd_unblock(args: argparse.Namespace) -> int:
    from webhooks import unblock

    return unblock.cmd_unblock(args)


def cmd_queues(args: argparse.Namespace) -> int:
    from ops import queues

    return queues.main(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from devtools.demo import run

    return run.main(args.demo_args)


def cmd_bench(args: argparse.Namespace) -> int:
    from devtools import bench

    return bench.main(args.bench_args)


# Subcommands whose own parser reads every argument after the command word.
PASSTHROUGH = ("twilio-sim", "queues", "demo", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadsms", description="SMS backend for texting event leads.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="apply database migrations (idempotent)")
    p.set_defaults(run=cmd_migrate)

    p = sub.add_parser("web", help="the HTTP server: portal API, CRM hook, Twilio webhooks")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=None, help="default: $PORT (8080)")
    p.add_argument("--metrics-host", default="0.0.0.0", help="interface of the METRICS_PORT listener")
    p.set_defaults(run=cmd_web)

    p = sub.add_parser("worker", help="dramatiq workers for every queue but deliveries (or the named ones)")
    p.add_argument("--queues", nargs="+", metavar="Q")
    p.set_defaults(run=cmd_worker)

    p = sub.add_parser("sweeper", help="the periodic pass that re-enqueues lost work")
    p.add_argument("--once", action="store_true", help="run one pass and exit")
    p.set_defaults(run=cmd_sweeper)

    intake_offboarding.add_parser(firms_cli.add_parser(sub))

    p = sub.add_parser("twilio-sim", help="the Twilio simulator (and `inbound` to text us)")
    p.add_argument("sim_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=cmd_twilio_sim)

    p = sub.add_parser("import", help="bulk intake of older leads from a CSV file")
    p.add_argument("file")
    p.add_argument("--firm", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_import)

    p = sub.add_parser("optouts", help="the firm's opt-out list: import a CSV, export it")
    optouts = p.add_subparsers(dest="optouts_command", required=True, metavar="ACTION")
    pi = optouts.add_parser("import", help="add every phone of a CSV to the firm's opt-out list")
    pi.add_argument("file")
    pi.add_argument("--firm", type=int, required=True)
    pi.add_argument("--source", default=None, metavar="NAME", help="recorded as list:NAME (default: the file's name)")
    pi.add_argument("--force", action="store_true", help="re-add phones staff removed from the list")
    pi.add_argument("--batch-size", type=int, default=1000, help=argparse.SUPPRESS)
    pi.add_argument("--no-progress", action="store_true")
    pi.set_defaults(run=cmd_optouts)
    pe = optouts.add_parser("export", help="the firm's opt-out list with each phone's source and time")
    pe.add_argument("--firm", type=int, required=True)
    pe.add_argument("--format", choices=("csv", "json"), default="csv")
    pe.set_defaults(run=cmd_optouts)

    p = sub.add_parser("unblock", help="lift an auto-block for a firm's phone (audited)")
    p.add_argument("--firm", type=int, required=True)
    p.add_argument("--phone", required=True)
    p.add_argument("--by", default="cli", help="who lifts it (recorded in the audit)")
    p.set_defaults(run=cmd_unblock)

    outbound_cli.add_parser(sub)

    p = sub.add_parser("queues", help="queue depths, dead letters, retry")
    p.add_argument("queue_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=cmd_queues)

    p = sub.add_parser("demo", help="everything at once with demo data, for a first look")
    p.add_argument("demo_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("bench", help="the benchmarks")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from shared import eventloop

    eventloop.install()
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        # argparse's REMAINDER refuses a leading option ("twilio-sim --port 9"): hand the
        # rest over untouched to the subcommand's own parser.
        args = parser.parse_args([argv[0]])
        rest = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        setattr(args, {"twilio-sim": "sim_args", "queues": "queue_args", "demo": "demo_args",
                       "bench": "bench_args"}[argv[0]], rest)
    else:
        args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except ConfigError as exc:
        print(f"leadsms: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AppError as exc:
        print(f"leadsms: {exc.message or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
