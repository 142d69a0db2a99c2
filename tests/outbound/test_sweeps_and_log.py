"""The sweeper's webhook tasks, the slow-down on 429 + Retry-After, and the delivery log
and replay commands (`leadsms webhooks deliveries|replay`), in-process against a real
receiver and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import events
from outbound import client, delivery, endpoints, fanout, lanes, queries, sweeps
from shared.deps import Deps
from tests.outbound.support import Receiver, receiving
from tests.support import ROOT


async def _event(deps: Deps, firm_id: int, phone: str = "+16465557001") -> None:
    async with deps.pool.acquire() as conn, conn.transaction():
        await events.record(conn, firm_id, "consent.changed",
                            {"phone": phone, "kind": "opt_out", "source": "test", "at": None})


async def _drain(deps: Deps, endpoint_id: int) -> None:
    await fanout.fan_out(deps, None)
    taken = await lanes.take(deps.redis, endpoint_id, 30.0, 1)
    if taken:
        (lane, token), = taken
        await delivery.drain(deps, endpoint_id, lane, token)
    await client.close_sessions()


async def test_an_endpoint_failing_every_attempt_for_five_days_is_disabled_and_the_firm_told(deps, pool, firm):
    made = await endpoints.create(deps, firm.id, "http://127.0.0.1:9/hook", ["*"])
    await pool.execute("UPDATE webhook_endpoints SET failing_since = now() - interval '5 days 1 minute' WHERE id = $1",
                       made["id"])
    assert await sweeps.disable_failing(deps) == 1
    row = await pool.fetchrow("SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = $1", made["id"])
    assert (row["enabled"], row["disabled_reason"]) == (False, "failing")
    event = await pool.fetchrow("SELECT type, data FROM events WHERE firm_id = $1", firm.id)
    assert event["type"] == "webhook_endpoint.disabled" and event["data"]["endpoint_id"] == made["id"]
    assert await sweeps.disable_failing(deps) == 0  # once


async def test_an_endpoint_failing_for_four_days_stays_enabled(deps, pool, firm):
    made = await endpoints.create(deps, firm.id, "http://127.0.0.1:9/hook", ["*"])
    await pool.execute("UPDATE webhook_endpoints SET failing_since = now() - interval '4 days' WHERE id = $1", made["id"])
    assert await sweeps.disable_failing(deps) == 0


async def test_a_429_with_retry_after_slows_the_whole_endpoint_down(deps, pool, firm):
    async with receiving(Receiver(answers=[429], retry_after="120")) as receiver:
        made = await endpoints.create(deps, firm.id, receiver.url, ["*"])
        await _event(deps, firm.id)
        await _event(deps, firm.id, "+16465557002")
        await _drain(deps, made["id"])
    assert len(receiver.got) == 1, "the second delivery waits for the Retry-After too"
    slowed = await pool.fetchval("SELECT extract(epoch FROM slow_until - now()) FROM webhook_endpoints WHERE id = $1",
                                 made["id"])
    assert 100 < slowed <= 120
    due = await pool.fetch("SELECT attempts, extract(epoch FROM next_attempt_at - now()) AS due_in "
                           "FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id", made["id"])
    assert due[0]["attempts"] == 1 and 100 < due[0]["due_in"] <= 121


async def test_a_claim_whose_worker_died_is_given_back_and_delivered(deps, pool, firm):
    async with receiving(Receiver()) as receiver:
        made = await endpoints.create(deps, firm.id, receiver.url, ["*"])
        receiver.secrets = [made["secret"]]
        await _event(deps, firm.id)
        await fanout.fan_out(deps, None)
        await pool.execute("UPDATE webhook_deliveries SET status = 'delivering', attempts = 1, "
                           "lease_until = now() - interval '1 second' WHERE endpoint_id = $1", made["id"])
        await _drain(deps, made["id"])
        assert receiver.got == []  # still leased to the dead worker: nothing due
        assert await queries.release_expired_leases(pool, 100) == 1
        await _drain(deps, made["id"])
    assert len(receiver.got) == 1 and receiver.got[0].payload is not None


async def test_finished_deliveries_past_retention_are_pruned_and_pending_ones_kept(deps, pool, firm):
    made = await endpoints.create(deps, firm.id, "http://127.0.0.1:9/hook", ["*"])
    await _event(deps, firm.id)
    await _event(deps, firm.id, "+16465557002")
    await fanout.fan_out(deps, None)
    await pool.execute("UPDATE webhook_deliveries SET created_at = now() - interval '31 days' WHERE endpoint_id = $1",
                       made["id"])
    first = await pool.fetchval("SELECT min(id) FROM webhook_deliveries WHERE endpoint_id = $1", made["id"])
    await pool.execute("UPDATE webhook_deliveries SET status = 'delivered' WHERE id = $1", first)
    assert await sweeps.prune_delivery_log(deps) == 1
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", made["id"]) == 1


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": settings.database_url,
           "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "shared.cli", "webhooks", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


async def test_the_delivery_log_shows_failed_deliveries_and_replay_makes_events_due_again(deps, settings, pool, firm):
    async with receiving(Receiver(answers=[503])) as receiver:
        made = await endpoints.create(deps, firm.id, receiver.url, ["*"])
        receiver.secrets = [made["secret"]]
        await _event(deps, firm.id)
        await _drain(deps, made["id"])
        proc = _cli(settings, "deliveries", "--firm", str(firm.id), "--failed")
        assert proc.returncode == 0, proc.stderr
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        assert len(lines) == 1 and lines[0]["last_status_code"] == 503 and lines[0]["last_outcome"] == "http_error"
        assert lines[0]["attempts_log"][0]["response_excerpt"] == "nope"
        await pool.execute("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = $1", made["id"])
        await _drain(deps, made["id"])
        assert len(receiver.got) == 2
        proc = _cli(settings, "deliveries", "--firm", str(firm.id), "--endpoint", str(made["id"]), "--failed")
        assert proc.stdout == ""
        proc = _cli(settings, "replay", "--endpoint", str(made["id"]), "--since", "2000-01-01T00:00:00Z")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["due_again"] == 1
        await _drain(deps, made["id"])
    assert len(receiver.got) == 3
    assert len({g.headers["webhook-id"] for g in receiver.got}) == 1
    assert all(g.payload is not None for g in receiver.got)


def test_replay_refuses_a_time_without_an_offset(settings):
    proc = _cli(settings, "replay", "--endpoint", "1", "--since", "2026-01-01T00:00:00")
    assert proc.returncode == 2 and "--since" in proc.stderr


async def test_metrics_show_attempts_by_outcome_the_backlog_per_endpoint_and_the_oldest_undelivered(
        deps, pool, firm, metrics_http):
    from prometheus_client.parser import text_string_to_metric_families

    async with receiving(Receiver(answers=[500])) as receiver:
        made = await endpoints.create(deps, firm.id, receiver.url, ["*"])
        await _event(deps, firm.id)
        await pool.execute("UPDATE events SET at = now() - interval '90 seconds' WHERE firm_id = $1", firm.id)
        await _drain(deps, made["id"])
    async with metrics_http.get("/metrics") as r:
        text = await r.text()
    figures = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert figures[("leadsms_webhook_deliveries_total", (("outcome", "http_error"),))] == 1
    assert figures[("leadsms_webhook_deliveries_total", (("outcome", "delivered"),))] == 0
    assert figures[("leadsms_webhook_backlog", (("endpoint_id", str(made["id"])),))] == 1
    assert figures[("leadsms_webhook_oldest_undelivered_age_seconds", ())] >= 89
