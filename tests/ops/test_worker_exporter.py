"""dramatiq's own exporter on a `leadsms worker`'s WORKER_METRICS_PORT."""

from __future__ import annotations

import uuid

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from ops.actors import ping_worker
from ops.metrics import WORKER_EXPORTER_METRICS
from tests.support import free_port, stop_process, wait_for


async def test_a_worker_exports_per_actor_figures_on_worker_metrics_port(worker_pool, services, deps, broker):
    port = free_port()
    prom_dir = services.tmp / f"prom-{port}"
    proc = worker_pool.start("ops", WORKER_METRICS_PORT=port, dramatiq_prom_db=prom_dir)
    try:
        async with aiohttp.ClientSession() as http:
            async def processed_pings() -> float:
                # another test's worker may also consume `ops`: keep offering pings until ours took one
                ping_worker.send(uuid.uuid4().hex)
                try:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        text = await resp.text()
                except aiohttp.ClientError:
                    return 0
                for fam in text_string_to_metric_families(text):
                    for s in fam.samples:
                        if s.name == "dramatiq_messages_total" and s.labels.get("actor_name") == "ping_worker":
                            return s.value
                return 0

            assert await wait_for(processed_pings, timeout=30, interval=0.3, what="the exporter to count a ping")
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
                names = {s.name for fam in text_string_to_metric_families(await resp.text()) for s in fam.samples}
        assert {"dramatiq_messages_total", "dramatiq_message_duration_milliseconds_bucket"} <= names
        assert names <= set(WORKER_EXPORTER_METRICS)
    finally:
        stop_process(proc)
        worker_pool.procs.remove(proc)


async def test_a_fresh_worker_exports_its_error_retry_and_dead_letter_series_at_zero(worker_pool, services):
    port = free_port()
    proc = worker_pool.start("ops", WORKER_METRICS_PORT=port, dramatiq_prom_db=services.tmp / f"prom-{port}")
    try:
        async with aiohttp.ClientSession() as http:
            async def scrape() -> dict | None:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        text = await resp.text()
                except aiohttp.ClientError:
                    return None
                found = {(s.name, s.labels.get("actor_name")): s.value
                         for fam in text_string_to_metric_families(text) for s in fam.samples}
                return found or None

            found = await wait_for(scrape, timeout=30, interval=0.3, what="the worker exporter to answer")
        for name in ("dramatiq_message_errors_total", "dramatiq_message_retries_total",
                     "dramatiq_message_rejects_total", "dramatiq_messages_total"):
            assert found.get((name, "send_message")) == 0, (name, sorted(found)[:20])
    finally:
        stop_process(proc)
        worker_pool.procs.remove(proc)
