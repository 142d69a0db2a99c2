"""docs/grafana-dashboard.json: importable as is, and every query names an exported metric."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from prometheus_client.parser import text_string_to_metric_families

from ops.metrics import WORKER_EXPORTER_METRICS

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
                "and", "or", "unless", "inf", "nan"}


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in all_panels(board["panels"]) for t in p.get("targets", []) if t.get("expr")]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions
    (followed by "("), keywords, label names (inside {...} or by/without (...)), strings
    or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = m.group(0)
        rest = expr[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_the_name_parser_finds_metrics_not_functions_or_labels():
    expr = ('histogram_quantile(0.95, sum by (le, actor_name) (rate(x_bucket{a="b(c)"}[5m]))) '
            '/ clamp_min(sum without (queue) (y_total), 1) and on (queue) z')
    assert metric_names(expr) == {"x_bucket", "y_total", "z"}


async def test_every_dashboard_query_names_a_metric_the_service_exports(metrics_http):
    async with metrics_http.get("/metrics") as resp:
        text = await resp.text()
    exported = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
    exported |= {fam.name for fam in text_string_to_metric_families(text)}
    exported |= set(WORKER_EXPORTER_METRICS)

    used = {name: expr for expr in expressions() for name in metric_names(expr)}
    assert len(used) >= 20
    missing = {name: expr for name, expr in used.items() if name not in exported}
    assert not missing, f"dashboard queries name metrics nobody exports: {missing}"


def test_the_dashboard_imports_as_is_with_a_prometheus_datasource_input():
    board = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30
    panels = list(all_panels(board["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
            assert p["targets"] and all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in p["targets"])
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("queue depth", "dead letters", "messages by status", "error codes", "refused", "deduplicated",
                  "auto-blocks", "opt-outs", "lookups", "cache hit", "webhooks", "oldest unprocessed", "latency"):
        assert topic in titles, topic


def test_retries_leave_out_the_delay_queue_and_delayed_reads_our_own_gauge():
    """dramatiq counts a retry on the queue and again on its `.DQ` delay queue; its delayed
    gauge leaks when another process runs the message (dramatiq issue #672)."""
    exprs = expressions()
    retries = [e for e in exprs if "dramatiq_message_retries_total" in e]
    assert retries and all('queue_name!~".*\\\\.DQ"' in e for e in retries), retries
    assert not [e for e in exprs if "dramatiq_delayed_messages_inprogress" in e]
    assert any("leadsms_queue_delayed" in e for e in exprs)
