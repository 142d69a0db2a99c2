"""The `intake` scenario: CRM leads in, until each phone's line type is known.

Every lead has its own new phone (a mobile in the simulator), so each one goes the whole
way: `POST /v1/leads` → `validate_lead` job → `lookup_line_type` job → Twilio Lookup (the
simulator) → `phone_lines`. "Line type known" is the moment that row was written (its
`checked_at`, PostgreSQL's clock on the same machine as ours).

- steady: `intake_rate` leads/s for `intake_duration` s (open loop): p50/p95/p99 POST →
  line type known;
- bulk: `intake_bulk` leads as fast as the web takes them: leads/s accepted, and leads/s
  through to a known line type.
"""

from __future__ import annotations

import json
import time
from typing import Any

from shared.bench import load
from shared.bench.accounting import per_unit
from shared.bench.seed import phones
from shared.bench.system import System, wait_for_count


def lead_requests(system: System, count: int, start: int, tag: str) -> list[load.Request]:
    firms = system.firms
    out = []
    for i, phone in enumerate(phones("646", 5_000_000 + start, count)):
        firm = firms[i % len(firms)]
        national = phone[2:]
        body = {"external_id": f"{tag}-{i}", "name": f"Bench Lead {tag} {i}", "email": f"{tag}.{i}@example.com",
                "phone": f"({national[:3]}) {national[3:6]}-{national[6:]}", "event": "Bench Seminar"}
        out.append(load.Request("POST", f"{system.web_url}/v1/leads", json.dumps(body).encode(),
                                {"Authorization": firm.auth, "Content-Type": "application/json"},
                                tag=(firm.id, body["external_id"])))
    return out


async def _known(system: System, tag: str) -> int:
    rows = await system.sql(
        """SELECT count(*) AS n FROM leads l JOIN phone_lines p ON p.phone_e164 = l.phone_e164
           WHERE l.external_id LIKE $1""", f"{tag}-%")
    return int(rows[0]["n"])


async def _known_at(system: System, tag: str) -> dict[tuple[int, str], float]:
    rows = await system.sql(
        """SELECT l.firm_id, l.external_id, extract(epoch FROM p.checked_at)::float8 AS at
           FROM leads l JOIN phone_lines p ON p.phone_e164 = l.phone_e164
           WHERE l.external_id LIKE $1""", f"{tag}-%")
    return {(r["firm_id"], r["external_id"]): r["at"] for r in rows}


async def _phase(system: System, requests: list[load.Request], tag: str, *, rate: float | None) -> dict[str, Any]:
    opts = system.opts
    meter = system.meter("web", "worker", "twilio-sim")
    await meter.begin()
    t0 = time.time()
    async with load.session() as s:
        if rate is None:
            outcomes = await load.closed_loop(s, requests, opts.concurrency, want_json=False)
        else:
            outcomes = await load.open_loop(s, requests, rate, want_json=False)
    t_posted = time.time()
    accepted = [o for o in outcomes if o.status == 202]
    known, complete = await wait_for_count(lambda: _known(system, tag), len(accepted), stall_s=20,
                                           timeout=opts.drain_timeout, interval=0.1)
    spent = await meter.end()
    at = await _known_at(system, tag)
    latencies = [at[o.request.tag] - o.started for o in accepted if o.request.tag in at]
    t_last = max(at.values()) if at else t_posted
    return {
        "offered": len(requests), "accepted": len(accepted), "statuses": load.status_counts(outcomes),
        "line_type_known": known, "complete": complete,
        "accepted_per_s": round(len(accepted) / max(1e-9, t_posted - t0), 1),
        "known_per_s": round(known / max(1e-9, t_last - t0), 1),
        "post_to_line_type": load.latency_summary(latencies),
        "post_round_trip": load.latency_summary([o.elapsed for o in accepted]),
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_lead": {k: round(v * 1000, 3) for k, v in per_unit(spent, max(1, known)).items()},
    }


async def run_intake(system: System) -> dict[str, Any]:
    opts = system.opts
    await system.fresh_phase()
    async with load.session() as s:  # warm-up
        await load.closed_loop(s, lead_requests(system, 20, 900_000, "warm"), 4, want_json=False)
    await wait_for_count(lambda: _known(system, "warm"), 20, stall_s=20, timeout=60)
    steady_n = max(1, int(opts.intake_rate * opts.intake_duration))
    steady = await _phase(system, lead_requests(system, steady_n, 0, "steady"), "steady", rate=opts.intake_rate)
    bulk = await _phase(system, lead_requests(system, opts.intake_bulk, 200_000, "bulk"), "bulk", rate=None)
    return {"scenario": "intake", "rate": opts.intake_rate, "duration_s": opts.intake_duration,
            "bulk_n": opts.intake_bulk, "concurrency": opts.concurrency, "steady": steady, "bulk": bulk}
