"""Send benchmark: accepted sends/s end to end, and latency from POST to the simulator.

`bench_sends(...)` drives an already running stack over HTTP (the portal's POST, then the
simulator's own record of when each message was created) and returns the figures; the
benchmark issue reuses it. `main()` (`python -m send_pipeline.bench`) starts the real
processes itself — `leadsms twilio-sim`, `leadsms web`, `leadsms worker` (one process
each, status callbacks off) — on a fresh database, runs a throughput phase (as fast as
the client can) and a paced phase (latency at a fixed rate), prints JSON, and cleans up.

End-to-end latency of a message = the simulator's timestamp of its create attempt minus
the moment its POST started (same machine, same clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import aiohttp


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


async def _sim_count(session: aiohttp.ClientSession, sim_url: str) -> int:
    async with session.get(f"{sim_url}/sim/counters") as resp:
        return int((await resp.json()).get("messages_created", 0))


async def bench_sends(
    *,
    base_url: str,
    api_key: str,
    sim_url: str,
    conversation_ids: Sequence[int],
    count: int,
    rate: float | None = None,
    concurrency: int = 64,
    per_user: int = 10,
    settle_timeout_s: float = 120.0,
    label: str = "bench",
) -> dict[str, Any]:
    """POST `count` sends (round robin over `conversation_ids`, at most `per_user` per
    portal user so the rate limit never refuses), at `rate` per second or as fast as
    `concurrency` allows, then wait until the simulator has them all.

    Returns accepted count, refusals by status, sends/s end to end (accepted ÷ time from
    the first POST to the last simulator receipt), and latency percentiles in ms.
    """
    run = uuid.uuid4().hex[:8]
    started: dict[str, float] = {}
    statuses: dict[int, int] = {}
    post_ms: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url=base_url, connector=connector) as http, \
            aiohttp.ClientSession() as sim:
        baseline = await _sim_count(sim, sim_url)

        async def one(i: int, scheduled: float | None) -> None:
            body = f"{label} {run} #{i}: doors open at 6pm"
            conv = conversation_ids[i % len(conversation_ids)]
            user = f"{label}-{run}-user-{i // per_user}"
            async with gate:
                # Paced: latency counts from the planned start, so a backlog in front of
                # the server is not hidden (no coordinated omission).
                t0 = scheduled if scheduled is not None else time.time()
                async with http.post(f"/v1/conversations/{conv}/messages", data=json.dumps({"body": body}),
                                     headers={**headers, "X-User-Id": user}) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    if resp.status == 202:
                        started[body] = t0
                        post_ms.append((time.time() - t0) * 1000)

        t_first = time.time()
        tasks = []
        for i in range(count):
            scheduled = None
            if rate:
                scheduled = t_first + i / rate
                delay = scheduled - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        t_posted = time.time()

        accepted = len(started)
        deadline = time.monotonic() + settle_timeout_s
        while await _sim_count(sim, sim_url) < baseline + accepted and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        async with sim.get(f"{sim_url}/sim/messages") as resp:
            attempts = (await resp.json())["attempts"]

    received: dict[str, float] = {}
    for attempt in attempts:
        body = attempt.get("body")
        if attempt.get("outcome") == "created" and body in started and body not in received:
            received[body] = datetime.fromisoformat(attempt["at"]).timestamp()
    latencies = [(received[b] - started[b]) * 1000 for b in received]
    last = max(received.values(), default=t_posted)
    elapsed = max(last - t_first, 1e-9)
    return {
        "label": label,
        "requested": count,
        "rate": rate,
        "concurrency": concurrency,
        "accepted": accepted,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "received": len(received),
        "missing": accepted - len(received),
        "elapsed_s": round(elapsed, 3),
        "post_phase_s": round(t_posted - t_first, 3),
        "sends_per_s": round(len(received) / elapsed, 1),
        "accept_per_s": round(accepted / max(t_posted - t_first, 1e-9), 1),
        "latency_ms": {p: _round(_percentile(latencies, q)) for p, q in (("p50", 50), ("p90", 90), ("p99", 99))}
        | {"max": _round(max(latencies, default=None))},
        "post_ms": {p: _round(_percentile(post_ms, q)) for p, q in (("p50", 50), ("p99", 99))},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# ---- running the real processes ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up in {timeout_s}s")
            await asyncio.sleep(0.2)


async def _setup_firm(settings: Any, base_url: str, conversations: int) -> tuple[str, list[int]]:
    """A firm, `conversations` valid leads (set up directly: intake is not measured here)
    and their conversations, opened through the API."""
    from shared.cli import add_firm
    from shared.db import connect

    firm = await add_firm(settings.database_url, "Bench Seminars", f"+1646555{_free_port() % 9000 + 1000:04d}")
    conn = await connect(settings.database_url)
    try:
        lead_ids = [await conn.fetchval(
            """INSERT INTO leads (firm_id, external_id, name, phone_raw, phone_e164, phone_status)
               VALUES ($1, $2, $3, $4, $4, 'valid') RETURNING id""",
            firm["firm_id"], f"bench-{n}", f"Bench Lead {n}", f"+1212555{5000 + n:04d}")
            for n in range(conversations)]
    finally:
        await conn.close()
    ids = []
    headers = {"Authorization": f"Bearer {firm['api_key']}"}
    async with aiohttp.ClientSession(base_url=base_url) as http:
        for lead_id in lead_ids:
            async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=headers) as resp:
                ids.append((await resp.json())["conversation_id"])
    return firm["api_key"], ids


def _spawn(args: list[str], env: dict[str, str], log_dir: Path, name: str) -> subprocess.Popen:
    log = open(log_dir / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "shared.cli", *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _cpu_seconds(pgid: int) -> float | None:
    """User + system CPU seconds of every live process in a process group (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "comm": state, ppid, pgrp, ...
            total += (int(fields[11]) + int(fields[12])) / tick
    return round(total, 2)


async def _measured(procs: dict[str, subprocess.Popen], coro: Any) -> dict[str, Any]:
    """Run a phase; add the CPU seconds each process spent during it."""
    before = {name: _cpu_seconds(p.pid) for name, p in procs.items()}
    result = await coro
    after = {name: _cpu_seconds(p.pid) for name, p in procs.items()}
    result["cpu_s"] = {name: (None if before[name] is None or after[name] is None
                              else round(after[name] - before[name], 2)) for name in procs}
    return result


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the main process (dramatiq forwards it to its children), then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


async def run_stack(args: argparse.Namespace) -> dict[str, Any]:
    """Start sim, web and worker on a fresh database; run the two phases; clean up."""
    import asyncpg

    from shared.config import Settings
    from shared.db import migrate

    settings = Settings.from_env(require=("database_url", "redis_url"))
    admin = settings.database_url
    db_name = f"leadsms_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{db_name}"')
    await conn.close()
    parts = urlsplit(admin)
    dsn = urlunsplit((parts.scheme, parts.netloc, "/" + db_name, parts.query, parts.fragment))
    web_port, sim_port = _free_port(), _free_port()
    web_url, sim_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sim_port}"
    bench_settings = settings.replace(
        database_url=dsn, port=web_port, public_base_url=web_url, twilio_base_url=sim_url,
        twilio_account_sid=settings.twilio_account_sid or "AC" + "b" * 32,
        twilio_auth_token=settings.twilio_auth_token or "bench-token",
        worker_processes=1, worker_threads=args.worker_threads, worker_metrics_port=0,
        log_level=args.log_level, log_format="json",
    )
    env = {k: v for k, v in settings.extra.items()
           if not k.startswith(("DATABASE_", "TWILIO_", "PUBLIC_BASE", "PORT", "WORKER_", "LOG_"))}
    env.update(bench_settings.to_env())
    log_dir = Path(tempfile.mkdtemp(prefix="leadsms-bench-"))
    procs: dict[str, subprocess.Popen] = {}
    try:
        await migrate(dsn)
        procs["sim"] = _spawn(["twilio-sim", "--host", "127.0.0.1", "--port", str(sim_port), "--no-callbacks"],
                              env, log_dir, "sim")
        procs["web"] = _spawn(["web", "--host", "127.0.0.1", "--port", str(web_port)], env, log_dir, "web")
        procs["worker"] = _spawn(["worker"], env, log_dir, "worker")
        await _wait_http(f"{sim_url}/sim/healthz")
        await _wait_http(f"{web_url}/healthz")
        api_key, conversations = await _setup_firm(bench_settings, web_url, args.conversations)
        common = dict(base_url=web_url, api_key=api_key, sim_url=sim_url, conversation_ids=conversations)
        await bench_sends(**common, count=min(200, args.count), concurrency=args.concurrency, label="warmup")
        throughput = await _measured(procs, bench_sends(
            **common, count=args.count, concurrency=args.concurrency, label="throughput"))
        paced = await _measured(procs, bench_sends(
            **common, count=int(args.rate * args.duration), rate=args.rate,
            concurrency=max(64, int(args.rate)), label="paced"))
        return {
            "setup": {"web_processes": 1, "worker_processes": 1, "worker_threads": args.worker_threads,
                      "log_level": args.log_level, "status_callbacks": False, "cpus": os.cpu_count(),
                      "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                      "logs": str(log_dir)},
            "throughput": throughput,
            "paced": paced,
        }
    finally:
        for proc in reversed(list(procs.values())):
            _stop(proc)
        if not args.keep_database:
            conn = await asyncpg.connect(admin)
            await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m send_pipeline.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="sends in the throughput phase")
    parser.add_argument("--concurrency", type=int, default=64, help="client concurrency, throughput phase")
    parser.add_argument("--rate", type=float, default=100.0, help="sends/s in the latency phase")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the latency phase")
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args(argv)
    from shared.logging import configure

    configure("console", "WARNING")  # stdout is the JSON result
    print(json.dumps(asyncio.run(run_stack(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
