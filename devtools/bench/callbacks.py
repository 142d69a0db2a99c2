"""The `callbacks` scenario: signed Twilio status callbacks as fast as one web process takes them.

`n` messages already `sent` are written by SQL (each with a sid); then one `delivered`
callback per message is POSTed to `/twilio/status?m=<id>`, signed as Twilio signs it (the
twilio SDK's RequestValidator, through the simulator's signer), with `concurrency` in
flight. Signatures and bodies are computed before the clock starts, so the generator's
CPU goes to sending.

Figures: callbacks accepted per second by the web process (204s / time to the last
answer), then the seconds until every one is applied by the worker (its inbox row
processed), from the first POST and after the last answer.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import asyncpg

from devtools.bench import load, profile
from devtools.bench.accounting import capacity, per_unit
from devtools.bench.seed import seed_sent_messages
from devtools.bench.system import System, wait_for_count, warmup_count
from devtools.twilio_sim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN


def callback_requests(messages: list[dict], public_base_url: str, web_url: str) -> list[load.Request]:
    from devtools.twilio_sim.signing import SIGNATURE_HEADER, sign, status_params

    out = []
    for m in messages:
        path = f"/twilio/status?m={m['id']}"
        params = status_params(account_sid=DEFAULT_ACCOUNT_SID, sid=m["sid"], to=m["to"], from_=m["from"],
                               status="delivered")
        headers = {SIGNATURE_HEADER: sign(DEFAULT_AUTH_TOKEN, public_base_url + path, params),
                   "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
        out.append(load.Request("POST", web_url + path, urlencode(params).encode(), headers, tag=m["id"]))
    return out


async def run_callbacks(system: System) -> dict[str, Any]:
    opts = system.opts
    await system.fresh_phase()
    conn = await asyncpg.connect(system.dsn)
    try:
        # a few to warm up, then the measured ones
        messages = await seed_sent_messages(conn, system.firms, opts.callbacks + warmup_count(opts.callbacks))
        await conn.execute("ANALYZE messages")
    finally:
        await conn.close()
    requests = callback_requests(messages, system.web_url, system.web_url)
    warm = warmup_count(opts.callbacks)
    warmup, measured = requests[:warm], requests[warm:]

    async def processed() -> int:
        rows = await system.sql("SELECT count(*) AS n FROM twilio_inbox WHERE processed_at IS NOT NULL")
        return int(rows[0]["n"])

    async with load.session() as s:
        await load.closed_loop(s, warmup, 8, want_json=False)
        await wait_for_count(processed, len(warmup), stall_s=20, timeout=60)
        meter = system.meter("web", "worker")
        assert system.cluster is not None
        profiler = profile.start(opts.profile, system.cluster.groups("web", "worker"), "callbacks-")
        await meter.begin()
        t0 = time.time()
        outcomes = await load.closed_loop(s, measured, opts.callback_concurrency, want_json=False)
        t_answered = time.time()
    accepted = sum(1 for o in outcomes if o.status == 204)
    done, complete = await wait_for_count(processed, len(warmup) + accepted, stall_s=20,
                                          timeout=opts.drain_timeout, interval=0.1)
    t_applied = time.time()
    spent = await meter.end()
    profiled = profile.stop(profiler) if profiler else None
    return {
        "scenario": "callbacks", "n": opts.callbacks, "concurrency": opts.callback_concurrency,
        "accepted": accepted, "statuses": load.status_counts(outcomes),
        "accepted_per_s": round(accepted / max(1e-9, t_answered - t0), 1),
        "answer": load.latency_summary([o.elapsed for o in outcomes]),
        "applied": done - len(warmup), "complete": complete,
        "seconds_until_applied": round(t_applied - t0, 2),
        "seconds_after_last_answer": round(t_applied - t_answered, 2),
        "applied_per_s": round((done - len(warmup)) / max(1e-9, t_applied - t0), 1),
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_callback": {k: round(v * 1000, 3) for k, v in per_unit(spent, max(1, accepted)).items()},
        # every process of ours (and PostgreSQL, Redis), the load generator excluded
        "cpu_ms_per_callback_system": round(sum(v for k, v in per_unit(spent, max(1, accepted)).items()
                                                if k != "bench-client") * 1000, 3),
        # one web process runs on one core at a time: its ceiling at this CPU cost
        "web_capacity_per_s": capacity({"web": per_unit(spent, max(1, accepted)).get("web", 0.0)}, cores=1),
        **({"profile": profiled} if profiled else {}),
    }
