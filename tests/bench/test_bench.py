"""Smoke test of the benchmark harness: every scenario at a tiny size, through the real
`leadsms bench all` command, proves the harness starts the system, drives it, measures it
and prints its figures. The real runs (`make bench`) are never part of `make test`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from devtools.bench import accounting, load, profile, report
from tests.support import ROOT, Embedded, resolve_postgres, resolve_redis

pytestmark = pytest.mark.slow  # tens of seconds: `make test` starts it first

# Seconds, not minutes: every scenario runs, at the smallest size that still measures.
FLOOR_N, CALLBACKS, PICKER_QUERIES = 40, 40, 20
TINY = [
    "--n", "40", "--rate", "40", "--duration", "1", "--concurrency", "8",
    "--firms", "2", "--users", "2", "--conversations", "4",
    "--floor-n", str(FLOOR_N), "--floor-rounds", "2",
    "--callbacks", str(CALLBACKS), "--intake-rate", "10", "--intake-duration", "1", "--intake-bulk", "10",
    "--import-rows", "50", "--picker-leads", "20000", "--picker-queries", str(PICKER_QUERIES), "--drain-timeout", "60",
    "--stream-clients", "20", "--stream-firms", "4", "--stream-rate", "20", "--stream-duration", "1",
    "--webhook-events", "60", "--webhook-endpoints", "2", "--webhook-rate", "20", "--webhook-duration", "1",
]


def another_db(url: str) -> str:
    """The same Redis server, a db index no other test uses (the bench flushes it)."""
    from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = parse_qs(parts.query)
        query["db"] = ["3"]
        return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    return urlunsplit(parts._replace(path="/3"))


@pytest.fixture(scope="module")
async def bench_output(tmp_path_factory) -> dict[str, dict]:
    embedded = Embedded()
    try:
        pg = await resolve_postgres(embedded)
        # Its own Redis db: the session's `leadsms worker` (started by other test
        # modules) consumes the test db's queues and would take the bench's jobs.
        redis_url = another_db(resolve_redis(embedded))
        logs = tmp_path_factory.mktemp("bench-logs")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "BROKER_"))}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "shared.cli", "bench", "all", *TINY, "--pg-url", pg, "--redis-url", redis_url,
             "--logs", str(logs)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        elapsed = time.monotonic() - started
    finally:
        embedded.stop()
    assert done.returncode == 0, f"bench failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result["scenario"]] = result
    results["_elapsed"] = {"s": elapsed}
    results["_stdout"] = {"text": done.stdout}
    return results


@pytest.mark.timeout(300)  # the module's bench run is set up inside the first test's limit
async def test_every_scenario_prints_one_json_line_and_a_table(bench_output):
    for scenario in ("send", "floor", "callbacks", "intake", "stream", "webhooks", "picker"):
        result = bench_output[scenario]
        assert result["cores"] >= 1
        assert result["targets"], f"{scenario} names its target"
        assert f"== {scenario} ==" in bench_output["_stdout"]["text"]


async def test_stream_delivers_every_event_to_every_client_of_its_firm_and_times_it(bench_output):
    stream = bench_output["stream"]
    assert stream["delivered"] == stream["deliveries_expected"] == 20 * (20 // 4)
    assert stream["commit_to_client"]["n"] == stream["delivered"]
    assert stream["web_cpu_ms_per_delivery"] > 0 and stream["web_rss_mb"]["streams_open"]


async def test_webhooks_delivers_every_event_signed_and_times_it(bench_output):
    hooks = bench_output["webhooks"]
    assert hooks["saturation"]["delivered"] == 60 and hooks["unverified"] == 0
    assert hooks["fixed"]["commit_to_receipt"]["n"] == 20
    assert hooks["saturation"]["deliveries_per_s"] > 0 and hooks["saturation"]["cpu_ms_per_delivery"]["deliveries"] > 0


async def test_the_smoke_run_of_every_scenario_takes_seconds_not_minutes(bench_output):
    assert bench_output["_elapsed"]["s"] < 120, bench_output["_elapsed"]  # 25-65 s on a shared 2-core machine


async def test_send_gets_every_accepted_message_to_the_simulator_and_counts_cpu(bench_output):
    send = bench_output["send"]
    for phase in ("fixed", "saturation"):
        p = send[phase]
        assert p["accepted"] == p["offered"] and p["complete"], p
        assert p["post_to_sim"]["n"] == p["accepted"]
        assert p["sends_per_s"] > 0
        assert p["cpu_ms_per_msg"]["web"] > 0 and p["cpu_ms_per_msg"]["worker"] > 0


async def test_floor_interleaves_rounds_of_both_sides_and_reports_send_over_floor(bench_output):
    floor = bench_output["floor"]
    assert floor["send"]["received"] == FLOOR_N and floor["floor"]["received"] == FLOOR_N
    assert len(floor["send_over_floor_by_round"]) == 2
    assert floor["send_over_floor"] > 0 and floor["capacity_send_over_floor"] > 0


async def test_callbacks_are_all_accepted_and_applied(bench_output):
    cb = bench_output["callbacks"]
    assert cb["accepted"] == CALLBACKS and cb["applied"] == CALLBACKS and cb["complete"], cb
    assert cb["accepted_per_s"] > 0 and cb["seconds_until_applied"] > 0


async def test_intake_learns_every_line_type(bench_output):
    intake = bench_output["intake"]
    for phase in ("steady", "bulk"):
        p = intake[phase]
        assert p["line_type_known"] == p["offered"] and p["complete"], p
        assert p["post_to_line_type"]["p95_ms"] is not None


async def test_picker_answers_every_query(bench_output):
    picker = bench_output["picker"]
    assert picker["errors"] == 0
    assert picker["queries_3plus"]["n"] == PICKER_QUERIES and picker["empty_answers_3plus"] < PICKER_QUERIES // 2


# ---- the harness's pieces ------------------------------------------------------------------


def test_group_cpu_counts_a_busy_child_process_group():
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                             "while time.process_time() - t < 0.3: pass\ntime.sleep(5)"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while accounting.group_cpu(busy.pid) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert accounting.group_cpu(busy.pid) >= 0.25
    finally:
        busy.kill()
        busy.wait(5)


def test_percentiles_are_nearest_rank():
    values = [i / 1000 for i in range(1, 101)]
    summary = load.latency_summary(values)
    assert (summary["p50_ms"], summary["p95_ms"], summary["p99_ms"]) == (50.0, 95.0, 99.0)


def test_profile_summary_splits_samples_by_library():
    collapsed = ("main (/x/site-packages/aiohttp/web.py:1);json (/x/lib/python3.11/json/encoder.py:2) 3\n"
                 "main (/x/site-packages/aiohttp/web.py:1) 1\n")
    summary = profile.summarize(collapsed)
    assert summary["samples"] == 4
    assert dict(summary["by_library"]) == {"json": 75.0, "aiohttp": 25.0}


def test_a_missed_target_is_reported_as_missed():
    result = report.finish({"scenario": "callbacks", "accepted_per_s": 900.0}, 1.0)
    assert result["targets"][0]["met"] is False
