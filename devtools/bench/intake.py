"""The `intake` scenario: CRM leads in, until each phone's line type is known.

Every lead has its own new phone (a mobile in the simulator), so each one goes the whole
way: `POST /v1/leads` → `validate_lead` job → `lookup_line_type` job → Twilio Lookup (the
simulator) → `phone_lines`. "Line type known" is the moment that row was written (its
`checked_at`, PostgreSQL's clock on the same machine as ours).

- steady: `intake_rate` leads/s for `intake_duration` s (open loop, one firm), measured by
  the intake package's own `devtools.bench.intake_load.bench_intake`: p50/p95/p99 POST → line type known;
- bulk: `intake_bulk` leads POSTed as fast as the web takes them (every firm): leads/s
  accepted, and leads/s through to a known line type;
- import: `leadsms import` of an `import_rows`-row CSV (`devtools.bench.intake_load.write_leads_csv`):
  leads/s (validated inline, line types left to the lazy lookup).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from devtools.bench import load
from devtools.bench.accounting import per_unit
from devtools.bench.seed import phones
from devtools.bench.system import System, wait_for_count


def lead_requests(system: System, count: int, start: int, tag: str) -> list[load.Request]:
    firms = system.firms
    out = []
    # 332: an area code devtools.bench.intake_load's steady phase does not draw from
    for i, phone in enumerate(phones("332", 5_000_000 + start, count)):
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


async def _steady(system: System) -> dict[str, Any]:
    """devtools.bench.intake_load's own steady-rate measurement (open loop, phone_lines.checked_at)."""
    from devtools.bench.intake_load import bench_intake

    opts = system.opts
    meter = system.meter("web", "worker", "twilio-sim")
    count = max(1, int(opts.intake_rate * opts.intake_duration))
    await meter.begin()
    r = await bench_intake(system.web_url, system.firms[0].api_key, opts.intake_rate, count, dsn=system.dsn,
                           timeout_s=opts.drain_timeout, seed=1)
    spent = await meter.end()
    known = r["line_type_known"]
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    lat, post = r["post_to_line_type_s"], r["post_s"]
    return {
        "offered": count, "accepted": r["statuses"].get(202, r["statuses"].get("202", 0)),
        "statuses": {str(k): v for k, v in r["statuses"].items()}, "line_type_known": known,
        "complete": known == count, "accepted_per_s": r["achieved_rate"], "known_per_s": r["achieved_rate"],
        "post_to_line_type": {"n": known, "p50_ms": ms(lat["p50"]), "p95_ms": ms(lat["p95"]),
                              "p99_ms": ms(lat["p99"]), "max_ms": ms(lat["max"])},
        "post_round_trip": {"n": count, "p50_ms": ms(post["p50"]), "p95_ms": ms(post["p95"])},
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_lead": {k: round(v * 1000, 3) for k, v in per_unit(spent, max(1, known)).items()},
        "measured_by": r["measured_by"],
    }


async def _import(system: System) -> dict[str, Any]:
    """`leadsms import` of a generated CSV (devtools.bench.intake_load.write_leads_csv): leads/s of the
    bulk path that validates inline and leaves line types to the lazy lookup."""
    from devtools.bench.intake_load import write_leads_csv

    opts = system.opts
    assert system.cluster is not None
    path = write_leads_csv(str(system.log_dir / "import.csv"), opts.import_rows)
    firm = system.firms[-1]
    proc = system.cluster.spawn("import", system.cluster.cli("import", path, "--firm", str(firm.id), "--no-progress"))
    meter = system.meter()
    meter.children = True  # the import's own CPU: it is reaped by the time we look
    await meter.begin()
    t0 = time.time()
    while proc.popen.poll() is None:
        await meter.sample()
        await asyncio.sleep(0.1)
    elapsed = time.time() - t0
    spent = await meter.end()
    spent["import"] = spent.pop("reaped", 0.0)
    system.cluster.procs.pop("import", None)
    summary: dict[str, Any] = {}
    for line in reversed(proc.log_path.read_text(errors="replace").splitlines()):
        if line.startswith("{") and '"inserted"' in line:
            summary = json.loads(line)
            break
    inserted = int(summary.get("inserted", 0))
    seconds = float(summary.get("seconds") or elapsed)  # the importer's own clock: no interpreter start
    return {
        "rows": opts.import_rows, "exit_code": proc.popen.returncode, "inserted": inserted,
        "invalid": summary.get("invalid"), "seconds": round(seconds, 2), "process_seconds": round(elapsed, 2),
        "leads_per_s": round(inserted / seconds, 1) if seconds else None,
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_lead": {k: round(v * 1000, 3) for k, v in per_unit(spent, max(1, inserted)).items()},
    }


async def run_intake(system: System) -> dict[str, Any]:
    opts = system.opts
    await system.fresh_phase()
    async with load.session() as s:  # warm-up
        await load.closed_loop(s, lead_requests(system, 20, 900_000, "warm"), 4, want_json=False)
    await wait_for_count(lambda: _known(system, "warm"), 20, stall_s=20, timeout=60)
    steady = await _steady(system)
    bulk = await _phase(system, lead_requests(system, opts.intake_bulk, 200_000, "bulk"), "bulk", rate=None)
    result = {"scenario": "intake", "rate": opts.intake_rate, "duration_s": opts.intake_duration,
              "bulk_n": opts.intake_bulk, "concurrency": opts.concurrency, "steady": steady, "bulk": bulk}
    if opts.import_rows:
        result["import"] = await _import(system)
    return result
