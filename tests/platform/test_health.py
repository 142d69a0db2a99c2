"""The web plumbing's own answers: unknown routes, liveness and readiness."""


async def test_an_unknown_route_answers_json_not_html(http):
    async with http.get("/nowhere") as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "not_found"


async def test_healthz_and_readyz_answer_ok(http):
    async with http.get("/healthz") as resp:
        assert resp.status == 200
    async with http.get("/readyz") as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["ok"] is True


async def test_readyz_names_what_is_down(settings, deps, broker):
    import aiohttp
    from aiohttp import web as aioweb

    from shared.app import create_app
    from shared.deps import Deps, redis_client
    from tests.support import free_port

    dead_redis = redis_client("redis://127.0.0.1:1/0")
    broken = Deps(settings=settings, pool=deps.pool, redis=dead_redis, twilio=deps.twilio)
    app = create_app(settings, deps=broken, broker=broker)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    port = free_port()
    await aioweb.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503
            assert body["down"] == ["redis"] and "redis" in body["error"]
    finally:
        await runner.cleanup()
        await dead_redis.aclose()
