"""`make faults`: the marker, the figures each scenario records, and their summary.

Scenarios marked `@pytest.mark.faults` run only when asked for (`-m faults`); without a
`-m` they are deselected here too, so a plain `pytest` never starts a 5,000-send run.
Each scenario calls `record(name, **figures)`; the terminal summary prints every
scenario's figures and the totals the issue asks for (sent, lost, duplicated,
schemathesis cases and failures, forged requests accepted), and writes them as JSON to
`$LEADSMS_FAULTS_FIGURES` (default: the system temp dir) for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

FIGURES: dict[str, dict[str, Any]] = {}
TOTALS = ("messages_sent", "lost", "duplicated", "schemathesis_cases", "schemathesis_failures", "forged_accepted")


def record(scenario: str, **figures: Any) -> None:
    FIGURES.setdefault(scenario, {}).update(figures)
    print(f"\n[faults] {scenario}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection scenario, run by `make faults` (-m faults)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.option.markexpr:
        return
    kept = [i for i in items if i.get_closest_marker("faults") is None]
    dropped = [i for i in items if i.get_closest_marker("faults") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def fault_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """Where a scenario's processes write their logs (kept after the run for reading)."""
    return tmp_path_factory.mktemp(request.node.name[:40])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault figures")
    for scenario, figures in FIGURES.items():
        write(f"{scenario}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    totals = {k: sum(f.get(k, 0) for f in FIGURES.values()) for k in TOTALS}
    write("")
    write("messages sent: {messages_sent}   lost: {lost}   duplicated: {duplicated}   "
          "schemathesis cases: {schemathesis_cases} (failures: {schemathesis_failures})   "
          "forged requests accepted: {forged_accepted}".format(**totals))
    out = Path(os.environ.get("LEADSMS_FAULTS_FIGURES") or Path(tempfile.gettempdir()) / "leadsms-faults-figures.json")
    out.write_text(json.dumps({"scenarios": FIGURES, "totals": totals}, indent=2, default=str))
    write(f"figures written to {out}")
