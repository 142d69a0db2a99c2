"""docs/leadsms-alerts.yml: a rules file Prometheus loads, alerting on what the dashboard shows."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.ops.test_dashboard import metric_names
from tests.support import ROOT

RULES = ROOT / "docs" / "leadsms-alerts.yml"


def rules() -> dict[str, dict]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for group in doc["groups"] for r in group["rules"]}


def test_promtool_accepts_the_rules_file():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_a_web_or_worker_target_that_stops_answering_alerts():
    exprs = {name: r["expr"].strip() for name, r in rules().items()}
    assert exprs["LeadsmsWebDown"] == 'up{job="leadsms-web"} == 0'
    assert exprs["LeadsmsWorkerDown"] == 'up{job="leadsms-workers"} == 0'


def test_the_sweeper_alert_does_not_fire_just_because_postgresql_cannot_be_read():
    expr = rules()["LeadsmsSweeperDown"]["expr"]
    assert "absent(" not in expr
    assert 'leadsms_metrics_source_up{source="postgres"}' in expr


def test_every_rule_names_a_metric_the_service_or_the_worker_exporter_exports():
    from ops.metrics import WORKER_EXPORTER_METRICS
    from shared import metrics

    known = set(WORKER_EXPORTER_METRICS) | {"up"} | {f"{n}_bucket" for n in metrics.METRICS} | set(metrics.METRICS)
    text = (ROOT / "ops" / "metrics.py").read_text()
    for name, rule in rules().items():
        for metric in metric_names(rule["expr"]):
            assert metric in known or f'"{metric}"' in text, f"{name} reads {metric}, which nothing exports"
