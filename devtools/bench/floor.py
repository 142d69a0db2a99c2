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
4. The insert + conversation bump and their change-feed events (`message.created`,
   `conversation.updated`) in one transaction (`send_pipeline.writes.store_queued_message`),
   the feed's Redis wake-up, and the answer (the same message JSON).
5. A queue hop through a Redis list: LPUSH by the handler, BRPOP by a consumer task.
6. The claim with its `message.status` event (`claim_with_event`) and wake-up, one POST
   to the simulator's Messages.json with Basic auth (form-encoded, as Twilio's API takes
   it), the sid update with its event (`store_sent_with_event`) and wake-up.

The SQL and the Lua are imported from the send pipeline, so the floor always runs the
statements the product runs. Started as `python -m devtools.bench.floor --port N ...`.
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

    import events
    from send_pipeline import queries, writes
    from send_pipeline.limits import gate_for
    from conversations.shapes import message_json
    from shared.db import create_pool
    from shared.deps import redis_client

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
        async with pool.acquire() as conn:
            stored = await writes.store_queued_message(conn, message_id, firm_id, conversation_id, body, user)
        await events.wake(redis, [firm_id])
        await redis.lpush(QUEUE_KEY, message_id)
        return web.Response(status=202, content_type="application/json",
                            text=json.dumps(message_json(stored)))

    async def send_one(message_id: int) -> None:
        claim = await writes.claim_with_event(pool, message_id)
        if claim is None:
            return
        await events.wake(redis, [claim["firm_id"]])
        if claim["status"] != "sending":
            return
        form = {"To": claim["to_phone"], "From": claim["from_phone"], "Body": claim["body"],
                "StatusCallback": f"{opts.public_base_url}/twilio/status?m={message_id}"}
        async with http.post(create_url, data=form, headers={"Authorization": auth}) as resp:
            answer = await resp.json()
        if resp.status == 201:
            await writes.store_sent_with_event(pool, message_id, answer["sid"], answer["status"],
                                               int(answer["num_segments"]))
            await events.wake(redis, [claim["firm_id"]])

    async def consume() -> None:
        while True:
            # a bounded wait: the client's socket timeout (5 s) must not cut a blocking pop
            popped = await blocking.brpop([QUEUE_KEY], timeout=1)
            if popped is None:
                continue
            try:
                await send_one(int(popped[1]))
            except Exception as exc:  # keep consuming; the bench sees the message missing
                print(f"floor: send failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

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
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.floor", description="The send floor.")
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
    return [sys.executable, "-m", "devtools.bench.floor", "--port", str(port), "--database-url", database_url,
            "--redis-url", redis_url, "--sim-url", sim_url, "--account-sid", account_sid,
            "--auth-token", auth_token, "--public-base-url", public_base_url, "--consumers", str(consumers)]


if __name__ == "__main__":
    sys.exit(main())


# ---- the scenario ------------------------------------------------------------------------------


async def run_floor(system) -> dict:
    """`send / floor` in one run: rounds of the send path's saturation phase and the
    floor's, interleaved (their order alternating) on the same database, firms and
    simulator, so a change in the machine's background load touches both alike."""
    from devtools.local_services import free_port
    from devtools.bench.send import measure_sends, send_requests
    from devtools.bench.system import warmup_count
    from devtools.twilio_sim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    opts = system.opts
    cluster = system.cluster
    port = free_port()
    cluster.spawn("floor", floor_argv(
        port=port, database_url=system.dsn, redis_url=system.services.redis_url, sim_url=cluster.sim_url,
        account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN, public_base_url=cluster.web_url,
        consumers=opts.floor_consumers))
    floor_url = f"http://127.0.0.1:{port}"
    await cluster.wait_http("floor", f"{floor_url}/healthz")
    sides = {"send": (system.web_url, ("web", "worker", "twilio-sim")),
             "floor": (floor_url, ("floor", "twilio-sim"))}
    rounds: dict[str, list[dict]] = {"send": [], "floor": []}
    per = max(1, opts.floor_n // max(1, opts.floor_rounds))
    try:
        for side, (url, names) in sides.items():  # warm-up
            await measure_sends(system, send_requests(system.firms, url, warmup_count(per), 20_000_000, f"{side}warm"),
                                rate=None, concurrency=8, meter_names=names)
        for r in range(opts.floor_rounds):
            order = ("send", "floor") if r % 2 == 0 else ("floor", "send")
            for side in order:
                url, names = sides[side]
                start = 30_000_000 + (r * 2 + (side == "floor")) * per
                rounds[side].append(await measure_sends(
                    system, send_requests(system.firms, url, per, start, f"{side}{r}"),
                    rate=None, concurrency=opts.concurrency, meter_names=names))
    finally:
        await cluster.stop("floor")
    send, floor = _combine(rounds["send"]), _combine(rounds["floor"])
    send_cpu = send["cpu_ms_per_msg"].get("web", 0) + send["cpu_ms_per_msg"].get("worker", 0)
    floor_cpu = floor["cpu_ms_per_msg"].get("floor", 0)
    return {
        "scenario": "floor", "n": opts.floor_n, "rounds": opts.floor_rounds, "concurrency": opts.concurrency,
        "consumers": opts.floor_consumers,
        "send": send, "floor": floor,
        "send_sends_per_s": send["sends_per_s"],
        "floor_sends_per_s": floor["sends_per_s"],
        "send_over_floor": _ratio(send["sends_per_s"], floor["sends_per_s"]),
        "send_over_floor_by_round": [_ratio(a["sends_per_s"], b["sends_per_s"])
                                     for a, b in zip(rounds["send"], rounds["floor"])],
        "send_cpu_ms_per_msg": round(send_cpu, 3),
        "floor_cpu_ms_per_msg": round(floor_cpu, 3),
        "capacity_send_over_floor": _ratio(send["capacity_sends_per_s"], floor["capacity_sends_per_s"]),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _combine(results: list[dict]) -> dict:
    """Rounds of one side as one measurement: messages over seconds, CPU over messages,
    and the capacity those CPU costs allow on this machine's cores."""
    from devtools.bench.accounting import capacity

    received = sum(r["received"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    cpu: dict[str, float] = {}
    for r in results:
        for name, value in r["cpu_s"].items():
            cpu[name] = cpu.get(name, 0.0) + value
    per_msg = {name: value / max(1, received) for name, value in cpu.items()}
    return {
        "received": received, "seconds": round(seconds, 2),
        "sends_per_s": round(received / seconds, 1) if seconds else None,
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_ms_per_msg": {k: round(v * 1000, 3) for k, v in per_msg.items()},
        "capacity_sends_per_s": capacity(per_msg),
        "post_to_sim_p50_ms": [r["post_to_sim"]["p50_ms"] for r in results],
    }
