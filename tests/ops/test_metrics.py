"""`GET /metrics`: every figure, read after a scripted run, at its expected value."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import metrics
from shared.deps import close_deps, open_deps, redis_client
from ops.metrics import PG_ACQUIRE_TIMEOUT_S, FiguresCache, render_metrics
from tests.ops import jobs, seed
from tests.ops.conftest import OPS_TOKEN, serve_app, wait_dead


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, keyed by (sample name, labels); parsing also checks the format."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def at(figures, name: str, **labels) -> float:
    return figures[(name, frozenset((k, str(v)) for k, v in labels.items()))]


async def record_feature_counters(redis) -> None:
    """The counters and histograms the features record, called the way they call them."""
    for code in metrics.REFUSAL_CODES:
        await metrics.record_send_refused(redis, code)
    await metrics.incr(redis, metrics.SENDS_REFUSED, 2, code="rate_limited")
    for _ in range(2):
        await metrics.record_send_deduplicated(redis)
    for kind, result, n in [("status", "ok", 5), ("status", "bad_signature", 1), ("inbound", "ok", 2),
                            ("inbound", "error", 1)]:
        for _ in range(n):
            await metrics.record_webhook(redis, kind, result)
    for result, n in [("made", 4), ("cache_hit", 6), ("failed", 1)]:
        await metrics.incr(redis, metrics.LOOKUPS, n, result=result)
    for seconds in (0.2, 0.3, 1.5):
        await metrics.observe_send_latency(redis, seconds)
    for seconds in (0.7, 3.0, 1200.0):
        await metrics.observe_line_type_latency(redis, seconds)


async def test_metrics_report_every_figure_after_a_scripted_run(metrics_http, pool, deps, broker, job_worker, make_firm):
    firm = await make_firm()
    async with pool.acquire() as conn:
        await seed.seed_all(conn, firm.id)
    await record_feature_counters(deps.redis)
    jobs.ops_flaky_job.send(uuid.uuid4().hex)  # raises: max_retries=0, so dead-lettered at once
    jobs.ops_flaky_job.send_with_options(args=("later",), delay=600_000)  # waits in the delay queue
    jobs.ops_idle_job.send(1)
    jobs.ops_idle_job.send(2)  # nobody consumes ops_idle: depth 2
    await wait_dead(broker, jobs.TEST_QUEUE, 1)

    async with metrics_http.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        f = samples(await resp.text())

    # queues, from the broker
    assert at(f, "leadsms_queue_dead", queue=jobs.TEST_QUEUE) == 1
    assert at(f, "leadsms_queue_delayed", queue=jobs.TEST_QUEUE) == 1
    assert at(f, "leadsms_queue_depth", queue=jobs.IDLE_QUEUE) == 2
    for queue in ("intake", "lookup", "send", "status", "inbound", "ops"):
        assert at(f, "leadsms_queue_dead", queue=queue) == 0
    # messages, from PostgreSQL
    for status, n in seed.EXPECTED_STATUS.items():
        assert at(f, "leadsms_messages", status=status) == n, status
    for (code, status), n in seed.EXPECTED_ERRORS.items():
        assert at(f, "leadsms_messages_by_error_code", error_code=code, status=status) == n
    assert at(f, "leadsms_messages_blocked_by_reason", reason="opted_out") == 1
    assert at(f, "leadsms_messages_blocked_by_reason", reason="landline") == 1
    assert 3 <= at(f, "leadsms_messages_oldest_sending_age_seconds") < 60
    assert 0 <= at(f, "leadsms_messages_oldest_queued_age_seconds") < 60
    # consent and blocks
    assert at(f, "leadsms_phones_blocked") == 2
    assert at(f, "leadsms_auto_blocks_total") == 2
    assert at(f, "leadsms_phones_opted_out") == 1
    assert at(f, "leadsms_phones_review_pending") == 1
    assert at(f, "leadsms_consent_changes_total", kind="opt_out") == 3
    assert at(f, "leadsms_consent_changes_total", kind="opt_in") == 1
    # inbox, leads, sweeper
    assert at(f, "leadsms_inbox_unprocessed") == 1
    assert 90 <= at(f, "leadsms_inbox_oldest_unprocessed_age_seconds") < 150
    assert at(f, "leadsms_leads_pending") == 1
    assert 20 <= at(f, "leadsms_leads_pending_oldest_age_seconds") < 80
    assert 3 <= at(f, "leadsms_sweeper_last_pass_age_seconds") < 60
    # counters the features record in Redis
    for code in metrics.REFUSAL_CODES:
        assert at(f, "leadsms_sends_refused_total", code=code) == (3 if code == "rate_limited" else 1)
    assert at(f, "leadsms_sends_deduplicated_total") == 2
    assert at(f, "leadsms_webhook_requests_total", kind="status", result="ok") == 5
    assert at(f, "leadsms_webhook_requests_total", kind="status", result="bad_signature") == 1
    assert at(f, "leadsms_webhook_requests_total", kind="inbound", result="ok") == 2
    assert at(f, "leadsms_webhook_requests_total", kind="inbound", result="error") == 1
    assert at(f, "leadsms_webhook_requests_total", kind="inbound", result="bad_signature") == 0
    assert at(f, "leadsms_lookups_total", result="made") == 4
    assert at(f, "leadsms_lookups_total", result="cache_hit") == 6
    assert at(f, "leadsms_lookups_total", result="failed") == 1
    # histograms: cumulative buckets, sum, count
    send = "leadsms_send_accept_to_twilio_seconds"
    assert at(f, f"{send}_bucket", le="0.1") == 0
    assert at(f, f"{send}_bucket", le="0.25") == 1
    assert at(f, f"{send}_bucket", le="0.5") == 2
    assert at(f, f"{send}_bucket", le="1.0") == 2
    assert at(f, f"{send}_bucket", le="2.5") == 3
    assert at(f, f"{send}_bucket", le="+Inf") == 3
    assert at(f, f"{send}_count") == 3
    assert at(f, f"{send}_sum") == pytest.approx(2.0)
    line = "leadsms_intake_to_line_type_seconds"
    assert at(f, f"{line}_bucket", le="1.0") == 1
    assert at(f, f"{line}_bucket", le="5.0") == 2
    assert at(f, f"{line}_bucket", le="900.0") == 2
    assert at(f, f"{line}_bucket", le="+Inf") == 3
    assert at(f, f"{line}_count") == 3
    # every source answered, and the web process's own figures are there
    for source in ("postgres", "redis", "broker"):
        assert at(f, "leadsms_metrics_source_up", source=source) == 1
    assert any(name.startswith(("process_", "python_")) for name, _ in f)


async def test_metrics_of_an_empty_system_are_zeros_not_gaps(metrics_http, deps):
    async with metrics_http.get("/metrics") as resp:
        f = samples(await resp.text())
    assert at(f, "leadsms_messages", status="failed") == 0
    assert at(f, "leadsms_sends_refused_total", code="landline") == 0
    assert at(f, "leadsms_send_accept_to_twilio_seconds_count") == 0
    assert at(f, "leadsms_inbox_oldest_unprocessed_age_seconds") == 0
    assert at(f, "leadsms_queue_depth", queue="send") == 0
    for reason in ("opted_out", "landline", "blocked", "invalid_phone", "review_opt_out"):
        assert at(f, "leadsms_messages_blocked_by_reason", reason=reason) == 0
    assert not any(name == "leadsms_sweeper_last_pass_age_seconds" for name, _ in f)


async def test_a_scrape_still_answers_when_the_broker_is_down(deps):
    from shared.broker import build_broker

    down = build_broker("redis://127.0.0.1:1/0")
    try:
        f = samples(await render_metrics(deps, down))
    finally:
        down.close()
    assert at(f, "leadsms_metrics_source_up", source="broker") == 0
    assert at(f, "leadsms_metrics_source_up", source="postgres") == 1
    assert at(f, "leadsms_messages", status="sent") == 0
    assert not any(name == "leadsms_queue_depth" for name, _ in f)


async def test_recording_a_metric_never_fails_the_caller_when_redis_is_down():
    r = redis_client("redis://127.0.0.1:1/0")
    try:
        await metrics.record_send_refused(r, "landline")
        await metrics.observe_send_latency(r, 0.5)
    finally:
        await r.aclose()


async def test_a_batch_of_observations_writes_what_as_many_one_by_one_would(deps):
    seconds = [0.0, 0.2, 0.7, 0.7, 3.0, 45.0, 1200.0, 99999.0]
    key = metrics.KEY_PREFIX + metrics.LINE_TYPE_LATENCY
    for value in seconds:
        await metrics.observe_line_type_latency(deps.redis, value)
    one_by_one = await deps.redis.hgetall(key)
    await deps.redis.delete(key)
    await metrics.observe_line_type_latencies(deps.redis, seconds)
    batched = await deps.redis.hgetall(key)
    sums = {k for k in one_by_one if k.startswith(b"sum|")}
    assert {k: v for k, v in batched.items() if k not in sums} == {k: v for k, v in one_by_one.items() if k not in sums}
    assert all(abs(float(batched[k]) - float(one_by_one[k])) < 1e-6 for k in sums)
    await metrics.observe_line_type_latencies(deps.redis, [])  # nothing to write: no round trip, no error


def test_an_unknown_metric_or_label_is_a_programming_error():
    with pytest.raises(ValueError, match="not a known counter"):
        metrics._counter_ops("leadsms_sends_refused", 1, {"code": "x"})
    with pytest.raises(ValueError, match="takes labels"):
        metrics._counter_ops(metrics.SENDS_REFUSED, 1, {"reason": "x"})


def test_label_values_are_escaped_in_the_text_format():
    assert metrics.label_string({"b": 'say "hi"\n', "a": "back\\slash"}) == 'a="back\\\\slash",b="say \\"hi\\"\\n"'


async def test_metrics_are_not_served_on_the_public_port_unless_metrics_port_is_0(settings, deps, broker):
    async with serve_app(settings.replace(ops_token=OPS_TOKEN, metrics_port=9192), deps, broker) as url:
        async with aiohttp.ClientSession(base_url=url) as http:
            async with http.get("/metrics", headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as resp:
                assert resp.status == 404  # on its own listener (METRICS_PORT), never where Twilio calls
    async with serve_app(settings.replace(ops_token=OPS_TOKEN, metrics_port=0), deps, broker) as url:
        async with aiohttp.ClientSession(base_url=url) as http:
            async with http.get("/metrics") as resp:
                assert resp.status == 401 and (await resp.json())["code"] == "unauthorized"
            async with http.get("/metrics", headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as resp:
                assert resp.status == 200 and "leadsms_metrics_source_up" in await resp.text()


async def test_concurrent_scrapes_read_postgresql_once_per_interval(deps, broker):
    cache = FiguresCache(ttl_s=60)
    bodies = await asyncio.gather(*(render_metrics(deps, broker, cache) for _ in range(20)))
    assert cache.reads == 1
    assert all(at(samples(b), "leadsms_metrics_source_up", source="postgres") == 1 for b in bodies)


async def test_a_scrape_with_the_pool_exhausted_answers_at_once_without_postgres_figures(settings, broker):
    small = await open_deps(settings, pool_size=1, with_twilio=False)
    try:
        async with small.pool.acquire():  # the webhooks hold every connection
            started = time.monotonic()
            body = await render_metrics(small, broker, FiguresCache(ttl_s=0))
            elapsed = time.monotonic() - started
        assert at(samples(body), "leadsms_metrics_source_up", source="postgres") == 0
        assert elapsed < PG_ACQUIRE_TIMEOUT_S + 1.0, elapsed
    finally:
        await close_deps(small)


FULL_COUNTS = {
    "messages": "SELECT ARRAY[status] AS labels, count(*) AS n FROM messages GROUP BY 1",
    "messages_error": "SELECT ARRAY[error_code::text, status] AS labels, count(*) AS n FROM messages "
                      "WHERE error_code IS NOT NULL GROUP BY 1",
    "messages_blocked": "SELECT ARRAY[coalesce(blocked_reason, '')] AS labels, count(*) AS n FROM messages "
                        "WHERE status = 'blocked' GROUP BY 1",
    "phones_blocked": "SELECT '{}'::text[] AS labels, count(*) AS n FROM phone_flags WHERE blocked HAVING count(*) > 0",
    "phones_opted_out": "SELECT '{}'::text[] AS labels, count(*) AS n FROM phone_flags WHERE opted_out "
                        "HAVING count(*) > 0",
    "phones_review_pending": "SELECT '{}'::text[] AS labels, count(*) AS n FROM phone_flags WHERE review_pending "
                             "HAVING count(*) > 0",
    "consent": "SELECT ARRAY[kind] AS labels, count(*) AS n FROM consent_events GROUP BY 1",
    "auto_blocks": "SELECT '{}'::text[] AS labels, count(*) AS n FROM phone_flag_events WHERE kind = 'blocked' "
                   "HAVING count(*) > 0",
}


async def counted_in_full(conn) -> dict:
    out = {}
    for name, sql in FULL_COUNTS.items():
        for r in await conn.fetch(sql):
            out[(name, tuple(r["labels"]))] = r["n"]
    return out


async def test_the_kept_counts_equal_full_counts_through_inserts_updates_deletes_and_folding(deps, make_firm):
    from ops import queries as ops_queries
    from ops.sweeps import compact_metric_counts

    a, b = await make_firm(), await make_firm()
    async with deps.pool.acquire() as conn:
        conv = await seed.seed_conversation(conn, a.id)
        await seed.seed_messages(conn, a.id, conv)
        for firm in (a, b):
            await seed.seed_consent_and_flags(conn, firm.id)
        other = await seed.seed_conversation(conn, b.id)
        await conn.execute(  # several rows in one statement
            """INSERT INTO messages (firm_id, conversation_id, direction, body, sent_by, status, error_code, twilio_sid)
               SELECT $1, $2, 'out', 'hi', 'u1', CASE WHEN g % 3 = 0 THEN 'undelivered' ELSE 'delivered' END,
                      CASE WHEN g % 3 = 0 THEN 30007 END, 'SMb' || lpad(g::text, 31, '0')
               FROM generate_series(1, 30) g""", b.id, other)
        assert await ops_queries.fetch_counts(conn) == await counted_in_full(conn)
        # status moves of many rows in one statement, one of them to an error and a block
        await conn.execute("UPDATE messages SET status = 'delivered' WHERE status IN ('sent', 'queued') AND firm_id = $1",
                           a.id)
        await conn.execute("UPDATE messages SET status = 'undelivered', error_code = 30007 WHERE status = 'sending'")
        await conn.execute("UPDATE messages SET attempts = attempts + 1")  # changes no count
        await conn.execute("UPDATE phone_flags SET blocked = false, blocked_at = NULL, blocked_reason = NULL, "
                           "opted_out = true, opted_out_at = now(), opted_out_source = 'staff:u1' "
                           "WHERE phone_e164 = '+16465553001'")
        await conn.execute("INSERT INTO phone_flag_events (firm_id, phone_e164, kind, reason) "
                           "VALUES ($1, '+16465553009', 'blocked', 'carrier_filtering')", a.id)
        assert await ops_queries.fetch_counts(conn) == await counted_in_full(conn)
        # a rolled-back change counts for nothing
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.execute("UPDATE messages SET status = 'failed', error_code = 21211 WHERE firm_id = $1", b.id)
                raise RuntimeError("rolled back")
        assert await ops_queries.fetch_counts(conn) == await counted_in_full(conn)
    # a firm's offboarding deletes its messages and flags (and hashes its ledger)
    from intake.offboarding import offboard_firm

    await offboard_firm(deps, b.id)
    async with deps.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE firm_id = $1", b.id) == 0
        assert await ops_queries.fetch_counts(conn) == await counted_in_full(conn)
        rows_before = await conn.fetchval("SELECT count(*) FROM metric_counts")
    assert await compact_metric_counts(deps) == rows_before
    async with deps.pool.acquire() as conn:
        assert await ops_queries.fetch_counts(conn) == await counted_in_full(conn)
        assert await conn.fetchval("SELECT count(*) FROM metric_counts") == len(await counted_in_full(conn))


async def test_a_scrape_reads_no_more_message_rows_than_are_queued_or_sending(deps, broker, make_firm):
    firm = await make_firm()
    async with deps.pool.acquire() as conn:
        conv = await seed.seed_conversation(conn, firm.id)
        await conn.execute(
            """INSERT INTO messages (firm_id, conversation_id, direction, body, sent_by, status, twilio_sid)
               SELECT $1, $2, 'out', 'hello', 'u1', 'delivered', 'SM' || lpad(g::text, 32, '0')
               FROM generate_series(1, 3000) g""", firm.id, conv)
        await conn.execute("ANALYZE messages")
        async with conn.transaction():
            # every row a plan reads shows in these stats (an index-only scan's would not)
            await conn.execute("SET LOCAL enable_indexonlyscan = off")
            before = await conn.fetchrow(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS n FROM pg_stat_xact_user_tables "
                "WHERE relname = 'messages'")
            from ops.queries import fetch_figures
            figures = await fetch_figures(conn)
            after = await conn.fetchrow(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS n FROM pg_stat_xact_user_tables "
                "WHERE relname = 'messages'")
    assert figures["messages_by_status"]["delivered"] == 3000
    assert after["n"] - before["n"] < 100
