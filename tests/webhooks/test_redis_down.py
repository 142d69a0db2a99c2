"""An opt-out must not depend on Redis: with the broker down, an inbound STOP is still
stored, applied and answered; its reply reaches the thread once Redis is back."""

import subprocess
import time

import aiohttp
import redis
from aiohttp import web as aioweb

from conversations.sendable import decide_for_phone
from shared import broker as brokers
from shared.app import create_app
from shared.deps import Deps, redis_client
from tests.support import free_port, wait_for
from tests.webhooks.conftest import stop_gracefully
from tests.webhooks.support import consent_history, open_thread, post_message, send_inbound
from webhooks.sweeps import replay_inbox

PHONE = "+16465551234"


class PrivateRedis:
    """A redis-server of this test's own (the shared one serves the other engineers)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        async def up():
            try:
                return client.ping()
            except redis.exceptions.ConnectionError:
                return False

        await wait_for(up, timeout=10, what="private redis-server to start")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


async def test_with_redis_stopped_an_inbound_stop_is_answered_and_blocks_sends_and_its_reply_arrives_later(
        settings, deps, pool, firm, broker, worker_pool):
    private = PrivateRedis()
    await private.start()
    port = free_port()
    own_settings = settings.replace(redis_url=private.url, broker_url=private.url, port=port,
                                    public_base_url=f"http://127.0.0.1:{port}")
    own_broker = brokers.build_broker(private.url)
    own_deps = Deps(settings=own_settings, pool=pool, redis=redis_client(private.url), twilio=None)
    brokers.install(own_broker)  # every actor now enqueues on the private Redis
    runner = aioweb.AppRunner(create_app(own_settings, deps=own_deps, broker=own_broker), access_log=None)
    worker = None
    try:
        await runner.setup()
        await aioweb.TCPSite(runner, "127.0.0.1", port).start()

        async with aiohttp.ClientSession(base_url=own_settings.public_base_url) as http:
            conversation_id = await open_thread(http, pool, firm, PHONE)
            private.stop()
            started = time.monotonic()
            answer = await send_inbound(http, own_settings, from_=PHONE, to=firm.number, body="STOP")
            elapsed = time.monotonic() - started
            assert answer.status == 200, answer.text
            assert elapsed < 5
            status, refused = await post_message(http, firm, conversation_id, "Still there?")
        assert (status, refused["code"]) == (409, "opted_out")
        decision = await decide_for_phone(pool, firm.id, PHONE)
        assert decision.code == "opted_out"
        assert await consent_history(pool, firm.id, PHONE) == [("opt_out", "keyword:stop")]
        assert await pool.fetchval("SELECT processed_at FROM twilio_inbox WHERE kind = 'inbound'") is None
        assert await pool.fetchval("SELECT count(*) FROM messages") == 0  # the refused send stored nothing

        await private.start()  # Redis is back, on the same port
        worker = worker_pool.start("inbound", REDIS_URL=private.url, BROKER_URL=private.url)
        assert await wait_for(lambda: replay_inbox(own_deps), timeout=15, what="the sweep to replay the stale row") >= 1
        row = await wait_for(lambda: pool.fetchrow("SELECT * FROM messages WHERE direction = 'in'"), timeout=20,
                             what="the STOP to reach the thread")
        assert (row["direction"], row["status"], row["body"]) == ("in", "received", "STOP")
        assert await pool.fetchval("SELECT outcome FROM twilio_inbox WHERE kind = 'inbound'") == "keyword"
        assert await consent_history(pool, firm.id, PHONE) == [("opt_out", "keyword:stop")]
    finally:
        brokers.install(broker)
        await runner.cleanup()
        if worker is not None:
            stop_gracefully(worker)
        await own_deps.redis.aclose()
        own_broker.close()
        private.stop()
