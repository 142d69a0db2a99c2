"""The floor: the send path's work per message without the framework, in one asyncio program.

What a send costs at the least, on this machine, in this run: the same HTTP request, the
same SQL statements, the same Redis commands and the same call to the simulator as
`POST /v1/conversations/{id}/messages` followed by the `send_message` job, with nothing
else. So `send / floor` says how much of the machine the product's framework (aiohttp
middlewares, dramatiq, the twilio SDK, structlog...) leaves for the work itself.

Per message, exactly:

1. HTTP POST to a bare aiohttp handler; the API key is hashed (SHA-256) and looked up
   (in-process cache, SQL on a miss: what the real auth does).
2. The sendable read with a fresh id (`send_pipeline.queries.conversation_for_send`).
3. The duplicate key SET NX PX and the rate-limit script: the product's own Lua script,
   one EVALSHA (`send_pipeline.limits`).
4. The insert + conversation bump (`insert_queued_message`), and the answer (the same
   message JSON).
5. A queue hop through a Redis list: LPUSH by the handler, BRPOP by a consumer task.
6. The claim (`claim_message`), one POST to the simulator's Messages.json with Basic
   auth (form-encoded, as Twilio's API takes it), the sid update (`store_sent`).

The SQL and the Lua are imported from the send pipeline, so the floor always runs the
statements the product runs. Started as `python -m shared.bench.floor --port N ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import sys

QUEUE_KEY = "leadsms:bench:floor:send"


async def serve(opts: argparse.Namespace) -> None:
    import aiohttp
    from aiohttp import web

    from send_pipeline import queries
    from send_pipeline.limits import gate_for
    from send_pipeline.messages import message_json
    from shared.db import create_pool
    from shared.deps import redis_client
    from shared.segments import count_segments

    pool = await create_pool(opts.database_url, max_size=opts.pool_size)
    redis = redis_client(opts.redis_url)
    blocking = redis_client(opts.redis_url)  # BRPOP holds a connection per consumer
    gate = gate_for(redis)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100),
                                 timeout=aiohttp.ClientTimeout(total=10))
    auth = "Basic " + base64.b64encode(f"{opts.account_sid}:{opts.auth_token}".encode()).decode()
    create_url = f"{opts.sim_url}/2010-04-01/Accounts/{opts.account_sid}/Messages.json"
    keys: dict[str, int] = {}

    async def firm_for(key: str) -> int | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        firm_id = keys.get(digest)
        if firm_id is None:
            firm_id = await pool.fetchval("SELECT id FROM firms WHERE api_key_sha256 = $1", digest)
            if firm_id is not None:
                keys[digest] = firm_id
        return firm_id

    async def send(request: web.Request) -> web.Response:
        firm_id = await firm_for(request.headers.get("Authorization", "").partition(" ")[2])
        if firm_id is None:
            return web.json_response({"error": "bad key", "code": "unauthorized"}, status=401)
        conversation_id = int(request.match_info["id"])
        user = request.headers["X-User-Id"]
        body = json.loads(await request.read())["body"].strip()
        row = await queries.conversation_for_send(pool, firm_id, conversation_id)
        if row is None or row["code"] is not None:
            return web.json_response({"error": "not sendable", "code": "not_sendable"}, status=409)
        message_id = row["new_id"]
        result = await gate.check(firm_id=firm_id, user=user, conversation_id=conversation_id, body=body,
                                  message_id=message_id, window_ms=opts.dedupe_window_ms, limit=opts.rate_limit)
        if not result.accepted:
            return web.json_response({"error": "refused", "code": "refused"}, status=429)
        stored = await queries.insert_queued_message(pool, message_id, firm_id, conversation_id, body, user,
                                                     count_segments(body))
        await redis.lpush(QUEUE_KEY, message_id)
        return web.Response(status=202, content_type="application/json",
                            text=json.dumps(message_json(stored)))

    async def consume() -> None:
        while True:
            _, raw = await blocking.brpop([QUEUE_KEY])
            message_id = int(raw)
            claim = await queries.claim_message(pool, message_id)
            if claim is None or claim["status"] != "sending":
                continue
            form = {"To": claim["to_phone"], "From": claim["from_phone"], "Body": claim["body"],
                    "StatusCallback": f"{opts.public_base_url}/twilio/status?m={message_id}"}
            async with http.post(create_url, data=form, headers={"Authorization": auth}) as resp:
                answer = await resp.json()
            if resp.status == 201:
                await queries.store_sent(pool, message_id, answer["sid"], answer["status"],
                                         int(answer["num_segments"]))

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    # BRPOP blocks its connection: one connection per consumer
    blocking.connection_pool.max_connections = opts.consumers + 4
    consumers = [asyncio.create_task(consume()) for _ in range(opts.consumers)]
    app = web.Application()
    app.router.add_post(r"/v1/conversations/{id:\d+}/messages", send)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", opts.port).start()
    try:
        await asyncio.Event().wait()
    finally:
        for task in consumers:
            task.cancel()
        await runner.cleanup()
        await http.close()
        await redis.aclose()
        await blocking.aclose()
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.bench.floor", description="The send floor.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--sim-url", required=True)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--public-base-url", required=True)
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--rate-limit", type=int, default=1_000_000)
    parser.add_argument("--dedupe-window-ms", type=int, default=2000)
    opts = parser.parse_args(argv)
    try:
        asyncio.run(serve(opts))
    except KeyboardInterrupt:
        pass
    return 0


def floor_argv(*, port: int, database_url: str, redis_url: str, sim_url: str, account_sid: str,
               auth_token: str, public_base_url: str, consumers: int) -> list[str]:
    return [sys.executable, "-m", "shared.bench.floor", "--port", str(port), "--database-url", database_url,
            "--redis-url", redis_url, "--sim-url", sim_url, "--account-sid", account_sid,
            "--auth-token", auth_token, "--public-base-url", public_base_url, "--consumers", str(consumers)]


if __name__ == "__main__":
    sys.exit(main())


# ---- the scenario ------------------------------------------------------------------------------


async def run_floor(system, send_result: dict | None = None) -> dict:
    """The floor against the same database, firms and simulator as `send`, then
    `send / floor`. Without a `send_result` from this run, the send saturation phase runs
    first, so the ratio always compares two measurements of one run."""
    from shared.bench import cluster as cl
    from shared.bench.send import measure_sends, run_send, send_requests

    opts = system.opts
    cluster = system.cluster
    if send_result is None or "saturation" not in send_result:
        send_result = await run_send(system, phases=("saturation",))
    # the product's processes stay out of the floor's way (an idle dramatiq worker polls)
    await cluster.stop("web")
    await cluster.stop("worker")
    await cluster.stop("sweeper")
    port = cl.free_port()
    cluster.spawn("floor", floor_argv(
        port=port, database_url=system.dsn, redis_url=system.services.redis_url, sim_url=cluster.sim_url,
        account_sid=cl.SIM_ACCOUNT_SID, auth_token=cl.SIM_AUTH_TOKEN, public_base_url=cluster.web_url,
        consumers=opts.floor_consumers))
    url = f"http://127.0.0.1:{port}"
    await cluster.wait_http("floor", f"{url}/healthz")
    names = ("floor", "twilio-sim")
    await measure_sends(system, send_requests(system.firms, url, 50, 20_000_000, "floorwarm"),
                        rate=None, concurrency=8, meter_names=names)
    floor = await measure_sends(system, send_requests(system.firms, url, opts.n, 30_000_000, "floor"),
                                rate=None, concurrency=opts.concurrency, meter_names=names)
    await cluster.stop("floor")
    sat = send_result["saturation"]
    send_cpu = sat["cpu_ms_per_msg"].get("web", 0) + sat["cpu_ms_per_msg"].get("worker", 0)
    floor_cpu = floor["cpu_ms_per_msg"].get("floor", 0)
    return {
        "scenario": "floor", "n": opts.n, "concurrency": opts.concurrency, "consumers": opts.floor_consumers,
        "floor": floor,
        "send_sends_per_s": sat["sends_per_s"],
        "floor_sends_per_s": floor["sends_per_s"],
        "send_over_floor": round(sat["sends_per_s"] / floor["sends_per_s"], 3) if floor["sends_per_s"] else None,
        "send_cpu_ms_per_msg": round(send_cpu, 3),
        "floor_cpu_ms_per_msg": round(floor_cpu, 3),
        "floor_cpu_over_send_cpu": round(floor_cpu / send_cpu, 3) if send_cpu else None,
    }
