"""What a scenario prints: one JSON line (for machines and for comparing runs), then a
table for people, with the core count, the issue's targets, and CPU per unit of work of
each process.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

# (scenario, what, path into the result, comparison, target). The throughput issue's
# table (callbacks, intake bulk, send / floor) and the earlier targets.
TARGETS: list[tuple[str, str, tuple[str, ...], str, float]] = [
    ("send", "p99 POST -> simulator at the fixed rate (ms)", ("fixed", "post_to_sim", "p99_ms"), "<=", 100.0),
    ("floor", "send / floor (accepted sends/s)", ("send_over_floor",), ">=", 0.85),
    ("callbacks", "callbacks accepted/s by one web process", ("accepted_per_s",), ">=", 2500.0),
    ("callbacks", "all applied, seconds after the last answer", ("seconds_after_last_answer",), "<=", 5.0),
    ("callbacks", "CPU ms per callback, all but the load generator", ("cpu_ms_per_callback_system",), "<=", 1.0),
    ("intake", "p95 POST -> line type known at the steady rate (ms)", ("steady", "post_to_line_type", "p95_ms"),
     "<=", 1000.0),
    ("intake", "bulk: leads/s to line type known", ("bulk", "known_per_s"), ">=", 500.0),
    ("intake", "bulk: worker CPU ms per lead", ("bulk", "cpu_ms_per_lead", "worker"), "<=", 1.5),
    ("picker", "p95 of 3+ character queries (ms)", ("queries_3plus", "p95_ms"), "<=", 20.0),
    ("stream", "p99 commit -> SSE client (ms)", ("commit_to_client", "p99_ms"), "<=", 100.0),
    ("webhooks", "deliveries/s to a local receiver", ("saturation", "deliveries_per_s"), ">=", 1000.0),
    ("webhooks", "p99 commit -> receiver at the fixed rate (ms)", ("fixed", "commit_to_receipt", "p99_ms"), "<=", 200.0),
]


def _get(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for scenario, what, path, op, target in TARGETS:
        if result.get("scenario") != scenario:
            continue
        value = _get(result, path)
        met = None if value is None else (value <= target if op == "<=" else value >= target)
        out.append({"what": what, "target": f"{op} {target:g}", "value": value, "met": met})
    return out


def finish(result: dict[str, Any], elapsed_s: float) -> dict[str, Any]:
    result["cores"] = os.cpu_count()
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    result["elapsed_s"] = round(elapsed_s, 1)
    result["targets"] = check_targets(result)
    return result


def summary(results: list[dict[str, Any]]) -> str:
    """Every target of the run, one line each, MET / MISSED (n/a: not measured)."""
    lines = ["== targets =="]
    for r in results:
        for t in r.get("targets", []):
            mark = "MET" if t["met"] else ("MISSED" if t["met"] is False else "n/a")
            lines.append(f"  {r.get('scenario'):<10} {t['what']:<52} {t['target']:>10}  {str(t['value']):>10}  {mark}")
    return "\n".join(lines)


def emit(result: dict[str, Any], write: Callable[[str], None] = print) -> None:
    write(json.dumps(result, separators=(",", ":"), default=str))
    write(table(result))


def _row(label: str, value: Any) -> str:
    return f"  {label:<44} {value}"


def _lat(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("n"):
        return "-"
    return f"p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, p99 {summary['p99_ms']} ms (n={summary['n']})"


def _cpu(label: str, per_unit: dict[str, float] | None, unit: str) -> list[str]:
    if not per_unit:
        return []
    lines = [f"  CPU ms per {unit} ({label}):"]
    for name, ms in sorted(per_unit.items(), key=lambda kv: -kv[1]):
        lines.append(f"      {name:<16} {ms:8.3f}")
    return lines


def table(r: dict[str, Any]) -> str:
    s = r.get("scenario")
    lines = [f"== {s} == {r.get('cores')} cores, load {r.get('loadavg_1m')}, {r.get('elapsed_s')} s"]
    if s == "stream":
        lines.append(_row("clients / firms / events per s", f"{r['clients']} / {r['firms']} / {r['rate']:g}"))
        lines.append(_row("delivered / expected", f"{r['delivered']} / {r['deliveries_expected']}"))
        lines.append(_row("commit -> client", _lat(r.get("commit_to_client"))))
        lines.append(_row("web CPU ms per delivery / per event",
                          f"{r['web_cpu_ms_per_delivery']} / {r['web_cpu_ms_per_event']}"))
        lines.append(_row("web RSS MB (idle, streams open, after)",
                          ", ".join(str(v) for v in r["web_rss_mb"].values())))
    if s == "webhooks":
        sat, fixed = r["saturation"], r["fixed"]
        lines.append(_row("endpoints / requests / duplicates / unverified",
                          f"{r['endpoints']} / {r['requests']} / {r['duplicates']} / {r['unverified']}"))
        lines.append(_row("saturation deliveries/s", f"{sat['deliveries_per_s']} ({sat['events']} in {sat['seconds']} s)"))
        lines += _cpu("saturation", sat["cpu_ms_per_delivery"], "delivery")
        lines.append(_row(f"commit -> receiver at {fixed['rate']:g}/s", _lat(fixed["commit_to_receipt"])))
        lines += _cpu("fixed rate", fixed["cpu_ms_per_delivery"], "delivery")
    if s == "send":
        for phase in ("fixed", "saturation"):
            p = r.get(phase)
            if not p:
                continue
            title = f"at {r['rate']:g}/s offered" if phase == "fixed" else f"saturation, {r['concurrency']} in flight"
            lines.append(f" {phase} ({title}): {p['accepted']}/{p['offered']} accepted, {p['at_simulator']} at simulator")
            lines.append(_row("sends/s end to end", p["sends_per_s"]))
            lines.append(_row("web accepts/s", p["web_accepts_per_s"]))
            lines.append(_row("capacity from CPU (all cores)", p.get("capacity_sends_per_s")))
            lines.append(_row("POST -> simulator", _lat(p["post_to_sim"])))
            lines.append(_row("POST round trip", _lat(p["post_round_trip"])))
            for stage, summary in (p.get("stages") or {}).items():
                lines.append(_row(f"   {stage.replace('_', ' ')}", _lat(summary)))
            lines += _cpu(phase, p["cpu_ms_per_msg"], "message")
    elif s == "floor":
        lines.append(_row("send sends/s", r["send_sends_per_s"]))
        lines.append(_row("floor sends/s", r["floor_sends_per_s"]))
        lines.append(_row("send / floor", f"{r['send_over_floor']} (by round: "
                                           f"{', '.join(str(x) for x in r['send_over_floor_by_round'])})"))
        lines.append(_row("CPU ms/msg: send (web+worker) vs floor", f"{r['send_cpu_ms_per_msg']} vs {r['floor_cpu_ms_per_msg']}"))
        lines.append(_row("capacity from CPU: send / floor", f"{r['send']['capacity_sends_per_s']} / "
                                                               f"{r['floor']['capacity_sends_per_s']} = "
                                                               f"{r['capacity_send_over_floor']}"))
        lines += _cpu("send", r["send"]["cpu_ms_per_msg"], "message")
        lines += _cpu("floor", r["floor"]["cpu_ms_per_msg"], "message")
    elif s == "callbacks":
        lines.append(_row("accepted/s (one web process)", r["accepted_per_s"]))
        lines.append(_row("web ceiling from its CPU (1 core)", f"{r.get('web_capacity_per_s')}/s"))
        lines.append(_row("answer", _lat(r["answer"])))
        lines.append(_row("seconds until all applied", f"{r['seconds_until_applied']} "
                                                        f"({r['seconds_after_last_answer']} after the last answer)"))
        lines.append(_row("applied/s", r["applied_per_s"]))
        lines.append(_row("CPU ms per callback, all but the load generator", r.get("cpu_ms_per_callback_system")))
        lines += _cpu("callbacks", r["cpu_ms_per_callback"], "callback")
    elif s == "intake":
        for phase in ("steady", "bulk"):
            p = r[phase]
            lines.append(f" {phase}: {p['accepted']}/{p['offered']} accepted, {p['line_type_known']} line types known")
            lines.append(_row("leads/s accepted", p["accepted_per_s"]))
            lines.append(_row("leads/s to line type known", p["known_per_s"]))
            lines.append(_row("POST -> line type known", _lat(p["post_to_line_type"])))
            lines += _cpu(phase, p["cpu_ms_per_lead"], "lead")
        imp = r.get("import")
        if imp:
            lines.append(f" import: {imp['inserted']}/{imp['rows']} rows inserted by `leadsms import`")
            lines.append(_row("leads/s", imp["leads_per_s"]))
            lines += _cpu("import", imp["cpu_ms_per_lead"], "lead")
    elif s == "picker":
        lines.append(_row("leads", f"{r['leads']} ({'reused' if r['reused_database'] else 'generated'} "
                                   f"{r['database']})"))
        lines.append(_row("3+ characters", _lat(r["queries_3plus"])))
        for kind, summary in r["by_kind"].items():
            lines.append(_row(f"   {kind}", _lat(summary)))
        lines.append(_row("2 characters", _lat(r["queries_2char"])))
        lines += _cpu("3+ characters", r["cpu_ms_per_query"], "query")
    for t in r.get("targets", []):
        mark = "MET" if t["met"] else ("MISSED" if t["met"] is False else "n/a")
        lines.append(f"  target: {t['what']} {t['target']}: {t['value']} -> {mark}")
    return "\n".join(lines)
