"""The read-only ops page: bearer OPS_TOKEN, off when unset; queues, statuses, failures."""

from __future__ import annotations

import uuid

import aiohttp

from tests.ops import jobs, seed
from tests.ops.conftest import OPS_TOKEN, serve_app, wait_dead

AUTH = {"Authorization": f"Bearer {OPS_TOKEN}"}


async def test_the_ops_page_is_off_when_ops_token_is_unset(settings, deps, broker):
    async with serve_app(settings.replace(ops_token=None, metrics_port=0), deps, broker) as url:
        async with aiohttp.ClientSession(base_url=url) as http:
            for path in ("/ops", "/ops.json", "/metrics"):  # METRICS_PORT=0: /metrics is behind the token
                async with http.get(path, headers=AUTH) as resp:
                    assert resp.status == 404


async def test_the_ops_page_wants_the_ops_token(ops_http):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {OPS_TOKEN}"},
                    {"Authorization": f"Bearer {OPS_TOKEN}x"}):
        async with ops_http.get("/ops", headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await resp.json())["code"] == "unauthorized"


async def test_the_ops_page_shows_queues_statuses_recent_failures_and_the_last_sweep(
        ops_http, pool, broker, job_worker, make_firm):
    firm = await make_firm()
    async with pool.acquire() as conn:
        await seed.seed_all(conn, firm.id)
    token = uuid.uuid4().hex
    jobs.ops_flaky_job.send(token)
    await wait_dead(broker, jobs.TEST_QUEUE, 1)

    async with ops_http.get("/ops.json", headers=AUTH) as resp:
        assert resp.status == 200
        data = await resp.json()
    queues = {q["queue"]: q for q in data["queues"]}
    assert set(queues) >= {"intake", "lookup", "send", "status", "inbound", "ops", jobs.TEST_QUEUE}
    assert queues[jobs.TEST_QUEUE]["dead"] == 1
    assert data["messages_by_status"] == seed.EXPECTED_STATUS
    failures = data["recent_failures"]
    assert len(failures) == 5
    assert sorted(f["error_code"] for f in failures) == [21610, 21614, 30003, 30007, 30007]
    assert {f["status"] for f in failures} == {"failed", "undelivered"}
    assert data["sweeper_last_pass"]["host_pid"] == "host-a:41"
    assert data["inbox"]["unprocessed"] == 1
    [dead] = data["dead_letters"]
    assert dead["actor"] == "ops_flaky_job" and dead["error"] == f"RuntimeError: job {token} cannot run yet"

    async with ops_http.get("/ops", headers=AUTH) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    for text in ("Queues", "Messages by status", "Recent failures", "30007", "21614", "host-a:41",
                 "ops_flaky_job", "Dead letters"):
        assert text in page, text
    assert seed.SECRET_BODY not in page and seed.SECRET_BODY not in str(data)
