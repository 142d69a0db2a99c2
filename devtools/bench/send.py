"""The `send` scenario: portal sends end to end, from POST to the simulator's receipt.

Two phases on the same cluster (one web, one worker process, the simulator with
callbacks off, the rate limit raised for the run):

- fixed load: `rate` sends/s offered for `duration` seconds (open loop); latency from the
  POST's start to the moment the simulator created the message (p50/p95/p99);
- saturation: `n` sends offered as fast as the web takes them (`concurrency` in flight);
  accepted sends/s end to end = accepted / (last simulator receipt - first POST), plus
  the web's own accept rate, the latencies of that burst (they include the queue that
  builds up) and CPU seconds per message of every process.

Sends are spread over every firm, user and conversation; each body is unique, so the
duplicate window never folds two together.
"""

from __future__ import annotations

import json
import time
from typing import Any

from devtools.bench import load, profile
from devtools.bench.accounting import capacity, per_unit
from devtools.bench.seed import BenchFirm
from devtools.bench.system import System, wait_for_count, warmup_count


def send_requests(firms: list[BenchFirm], base_url: str, count: int, start: int = 0,
                  tag: str = "send") -> list[load.Request]:
    """`count` send requests cycling over firms, then conversations, then users."""
    out = []
    f = len(firms)
    for j in range(start, start + count):
        firm = firms[j % f]
        k = j // f
        conv_id, _ = firm.conversations[k % len(firm.conversations)]
        user = firm.users[(k // len(firm.conversations) + k) % len(firm.users)]
        body = json.dumps({"body": f"Bench {tag} message {j}: see you at the seminar on Thursday!"}).encode()
        out.append(load.Request(
            "POST", f"{base_url}/v1/conversations/{conv_id}/messages", body,
            {"Authorization": firm.auth, "X-User-Id": user, "Content-Type": "application/json"}, tag=j))
    return out


def _message_id(outcome: load.Outcome) -> int | None:
    body = outcome.body
    if outcome.status in (200, 202) and isinstance(body, dict) and isinstance(body.get("id"), int):
        return body["id"]
    return None


async def _stages(system: System, accepted: list[load.Outcome], receipts: dict[int, float]) -> dict[str, Any]:
    """Where a message's time went, from the row's own timestamps: POST start -> row
    inserted (the web's work), row -> claimed by the worker (response, enqueue, broker,
    the worker's fetch), claimed -> the simulator has it (the Twilio call)."""
    rows = await system.sql(
        """SELECT id, extract(epoch FROM created_at)::float8 AS created,
                  extract(epoch FROM claimed_at)::float8 AS claimed FROM messages WHERE direction = 'out'""")
    times = {r["id"]: (r["created"], r["claimed"]) for r in rows}
    web, hop, twilio = [], [], []
    for o in accepted:
        mid = _message_id(o)
        row = times.get(mid)  # type: ignore[arg-type]
        at = receipts.get(mid)  # type: ignore[arg-type]
        if row is None or row[1] is None or at is None:
            continue
        web.append(row[0] - o.started)
        hop.append(row[1] - row[0])
        twilio.append(at - row[1])
    return {"post_to_row": load.latency_summary(web), "row_to_claim": load.latency_summary(hop),
            "claim_to_sim": load.latency_summary(twilio)}


async def measure_sends(system: System, requests: list[load.Request], *, rate: float | None,
                        concurrency: int, meter_names: tuple[str, ...],
                        profile_pids: dict[str, int] | None = None) -> dict[str, Any]:
    """Offer `requests` (open loop at `rate`, or closed loop at `concurrency` when rate is
    None), wait for the simulator to have every accepted one, and measure."""
    await system.fresh_phase()
    meter = system.meter(*meter_names)
    profiler = profile.start(system.opts.profile, profile_pids, "send-") if profile_pids else None
    await meter.begin()
    t0 = time.time()
    async with load.session() as s:
        if rate is None:
            outcomes = await load.closed_loop(s, requests, concurrency)
        else:
            outcomes = await load.open_loop(s, requests, rate)
    t_posted = time.time()
    accepted = [o for o in outcomes if _message_id(o) is not None]
    created, complete = await wait_for_count(system.sim_created, len(accepted), stall_s=20,
                                             timeout=system.opts.drain_timeout)
    spent = await meter.end()
    profiled = profile.stop(profiler) if profiler else None
    receipts = await system.sim_receipts()
    latencies = []
    for o in accepted:
        at = receipts.get(_message_id(o))  # type: ignore[arg-type]
        if at is not None:
            latencies.append(at - o.started)
    stages = await _stages(system, accepted, receipts)
    t_last = max(receipts.values()) if receipts else t_posted
    span = max(1e-9, t_last - t0)
    result: dict[str, Any] = {
        "offered": len(requests),
        "accepted": len(accepted),
        "statuses": load.status_counts(outcomes),
        "at_simulator": created,
        "complete": complete,
        "received": len(receipts),
        "seconds": round(span, 2),
        "sends_per_s": round(len(receipts) / span, 1),
        "web_accepts_per_s": round(len(accepted) / max(1e-9, t_posted - t0), 1),
        "post_to_sim": load.latency_summary(latencies),
        "post_round_trip": load.latency_summary([o.elapsed for o in accepted]),
        "stages": stages,
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_msg": {k: round(v * 1000, 3) for k, v in per_unit(spent, max(1, len(receipts))).items()},
        "capacity_sends_per_s": capacity(per_unit(spent, max(1, len(receipts)))),
    }
    if profiled:
        result["profile"] = profiled
    return result


async def run_send(system: System, *, phases: tuple[str, ...] = ("fixed", "saturation")) -> dict[str, Any]:
    opts = system.opts
    assert system.cluster is not None
    names = ("web", "worker", "twilio-sim")
    out: dict[str, Any] = {"scenario": "send", "n": opts.n, "rate": opts.rate, "duration_s": opts.duration,
                           "concurrency": opts.concurrency, "firms": len(system.firms),
                           "users_per_firm": opts.users, "conversations_per_firm": opts.conversations,
                           "worker_threads": opts.worker_threads, "log_level": opts.log_level}
    # warm-up: connections, prepared statements, imports on first use
    await measure_sends(system, send_requests(system.firms, system.web_url, warmup_count(opts.n), 10_000_000, "warmup"),
                        rate=None, concurrency=8, meter_names=names)
    if "fixed" in phases:
        count = max(1, int(opts.rate * opts.duration))
        out["fixed"] = await measure_sends(system, send_requests(system.firms, system.web_url, count, 0, "fixed"),
                                           rate=opts.rate, concurrency=0, meter_names=names)
    if "saturation" in phases:
        pids = {"web": system.cluster.procs["web"].pgid, "worker": system.cluster.procs["worker"].pgid}
        out["saturation"] = await measure_sends(
            system, send_requests(system.firms, system.web_url, opts.n, 1_000_000, "sat"),
            rate=None, concurrency=opts.concurrency, meter_names=names,
            profile_pids=pids if opts.profile else None)
    return out

