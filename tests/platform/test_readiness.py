"""`/readyz` on each supported broker (this module runs once on Redis, once on RabbitMQ)."""


async def test_readyz_is_200_when_database_redis_and_the_broker_answer(http, broker_kind):
    async with http.get("/readyz") as resp:
        assert resp.status == 200, f"{broker_kind}: {await resp.text()}"
        assert await resp.json() == {"ok": True}
