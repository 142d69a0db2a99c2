"""A real Prometheus (Debian's `prometheus`, when installed) scrapes a running system after
mixed traffic: the web's METRICS_PORT and a worker's exporter. Every dashboard query and
every alert rule is then evaluated by Prometheus itself; the figure is how many queries
returned data (the issue's first run: 34 of 38)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import aiohttp
import pytest
import yaml

from tests.faults.conftest import record
from tests.faults.sends import add_conversations, make_firm, post_sends, wait_settled
from tests.faults.stack import connect, private_stack
from tests.ops.test_alert_rules import RULES
from tests.ops.test_dashboard import expressions
from tests.support import free_port, stop_process, wait_for


def prometheus_config(web_metrics: str, worker_metrics: str) -> str:
    return yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "leadsms-web", "static_configs": [{"targets": [web_metrics]}]},
            {"job_name": "leadsms-workers", "static_configs": [{"targets": [worker_metrics]}]},
        ],
    })


@pytest.mark.faults
@pytest.mark.timeout(300)
async def test_a_real_prometheus_finds_data_for_the_dashboard_after_mixed_traffic(fault_dir):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus)")
    async with private_stack(fault_dir) as (stack, pg, rd):
        worker_port, prom_port = free_port(), free_port()
        stack.start_worker(WORKER_METRICS_PORT=worker_port, dramatiq_prom_db=fault_dir / "prom-db")
        stack.start_sweeper()
        (fault_dir / "prometheus.yml").write_text(
            prometheus_config(f"127.0.0.1:{stack.settings.metrics_port}", f"127.0.0.1:{worker_port}"))
        prom = subprocess.Popen([binary, f"--config.file={fault_dir / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={fault_dir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=open(fault_dir / "prometheus.log", "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        conn = await connect(stack)
        try:
            firm = await make_firm(stack)
            # mixed: delivered, carrier-filtered (01xx), flaky (05xx) and Twilio-refused (21610 at 0710)
            phones = [f"+1212555{n:04d}" for n in (5001, 5002, 5003, 150, 151, 510, 710)]
            convs = await add_conversations(conn, firm.id, phones)
            plan = [(conv, f"Mixed {k} to {conv}") for k in range(3) for conv in convs.values()]
            posted = await post_sends(stack, firm, plan)
            assert posted.accepted
            await wait_settled(conn, timeout=60)
            base = f"http://127.0.0.1:{prom_port}"
            async with aiohttp.ClientSession(base_url=base) as http:
                async def both_targets_up() -> bool:
                    try:
                        async with http.get("/api/v1/query", params={"query": "sum(up)"}) as resp:
                            result = (await resp.json())["data"]["result"]
                    except (aiohttp.ClientError, KeyError, ValueError):
                        return False
                    return bool(result) and float(result[0]["value"][1]) == 2

                await wait_for(both_targets_up, timeout=60, interval=0.5, what="Prometheus scraping web and worker")
                await asyncio.sleep(5)  # a few more scrapes, so rate() and delta() have samples
                empty = []
                exprs = expressions()
                for expr in exprs:
                    async with http.get("/api/v1/query", params={"query": expr}) as resp:
                        body = await resp.json()
                    assert body["status"] == "success", (expr, body)
                    if not body["data"]["result"]:
                        empty.append(expr)
                async with http.get("/api/v1/rules") as resp:
                    groups = (await resp.json())["data"]["groups"]
            bad_rules = [r["name"] for g in groups for r in g["rules"] if r.get("health") != "ok"]
            record("prometheus_scrape", queries=len(exprs), with_data=len(exprs) - len(empty),
                   rules=sum(len(g["rules"]) for g in groups), unhealthy_rules=len(bad_rules))
            print("queries without data:", empty)
            assert bad_rules == []
            assert empty == [], empty
        finally:
            await conn.close()
            stop_process(prom)
