"""No secret in the logs of real processes: auth token, API keys (right or wrong), and
no message body above debug level.

A small deployment (simulator, `leadsms web`, a worker, the sweeper, a private Redis and
its own database) goes through the paths that handle secrets and bodies: sends that are
delivered, refused for good (21610) and answered ambiguously (created then 500), inbound
replies and a STOP, a wrong key, a forged webhook, an outbound webhook endpoint (created,
its secret rotated, deliveries signed with both). Then every log line is searched.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from shared.db import migrate
from tests.faults.logscan import basic_credentials, scan
from tests.faults.sends import add_conversations, make_firm, post_sends, wait_settled
from tests.faults.servers import PrivateRedis
from tests.faults.stack import Stack, connect
from tests.faults.webhooks import text_us
from tests.outbound.support import Receiver, receiving
from tests.support import create_database, drop_database

pytestmark = pytest.mark.slow  # tens of seconds: `make test` starts it first

WRONG_KEY = "lsk_" + "W" * 43
WRONG_STREAM_TOKEN = "lst_" + "S" * 32
PHONES = ["+12125553456", "+13135550399", "+13135550901"]  # delivered, 21610, created-then-500


async def test_no_token_key_or_body_reaches_the_logs_of_real_processes(services, tmp_path):
    name, dsn = await create_database(services.admin_dsn)
    rd = PrivateRedis()
    stack = Stack(dsn, rd.url, tmp_path, log_level="DEBUG", webhooks_allow_private=True)
    try:
        await migrate(dsn)
        await stack.start_sim()
        await stack.start_web()
        stack.start_worker()
        stack.start_worker("deliveries")
        stack.start_sweeper()
        firm = await make_firm(stack)
        conn = await connect(stack)
        receiver_ctx = receiving(Receiver())
        receiver = await receiver_ctx.__aenter__()
        try:
            async with aiohttp.ClientSession(base_url=stack.web) as s:
                async with s.post("/v1/webhook-endpoints", json={"url": receiver.url, "events": ["*"]},
                                  headers=firm.headers()) as resp:
                    endpoint = await resp.json()
                async with s.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
                                  headers=firm.headers()) as resp:
                    rotated = await resp.json()
            webhook_secrets = {"webhook secret": endpoint["secret"], "rotated webhook secret": rotated["secret"]}
            receiver.secrets = list(webhook_secrets.values())
            convs = await add_conversations(conn, firm.id, PHONES)
            bodies = [f"Private body {i} zq{i}x" for i in range(len(PHONES))]
            posted = await post_sends(stack, firm, [(convs[p], b) for p, b in zip(PHONES, bodies)])
            assert len(posted.accepted) == len(PHONES)
            reply, stop_from = "My private reply zq9x", "+12125553457"
            assert (await text_us(stack, PHONES[0], firm.number, reply))["answer_status"] == 200
            assert (await text_us(stack, stop_from, firm.number, "STOP"))["answer_status"] == 200
            async with aiohttp.ClientSession(base_url=stack.web) as s:
                async with s.get("/v1/conversations", headers={"Authorization": f"Bearer {WRONG_KEY}"}) as resp:
                    assert resp.status == 401
                async with s.post("/twilio/inbound", data={"Body": "forged zq8x", "MessageSid": "SMx"},
                                  headers={"X-Twilio-Signature": "bm9wZQ=="}) as resp:
                    assert resp.status == 403
                async with s.post("/v1/stream-tokens", headers={"Authorization": f"Bearer {firm.key}"}) as resp:
                    stream_token = (await resp.json())["token"]
                async with s.get("/v1/events/stream", params={"token": stream_token, "after": "0"}) as resp:
                    assert resp.status == 200
                    assert (await resp.content.readline()).startswith(b"id: ")
                async with s.get("/v1/events/stream", params={"token": WRONG_STREAM_TOKEN}) as resp:
                    assert resp.status == 401
            await wait_settled(conn, timeout=60)
            for _ in range(100):
                if not await conn.fetchval("SELECT count(*) FROM twilio_inbox WHERE processed_at IS NULL"):
                    break
                await asyncio.sleep(0.3)
            for _ in range(100):  # the reply and the STOP reached the firm's endpoint, signed
                if receiver.of_type("message.received") and receiver.of_type("consent.changed"):
                    break
                await asyncio.sleep(0.3)
            assert receiver.of_type("message.received") and receiver.of_type("consent.changed")
        finally:
            await receiver_ctx.__aexit__(None, None, None)
            await conn.close()
        await asyncio.sleep(0.5)
        logs = stack.logs()
        for fact in ("send_accepted", "message_sent", "webhook_stored", "webhook_bad_signature"):
            assert fact in logs, f"the run should have logged {fact}"
        leaks = scan(logs, secrets={"auth token": stack.token, "api key": firm.key, "wrong api key": WRONG_KEY,
                                    "stream token": stream_token, "wrong stream token": WRONG_STREAM_TOKEN,
                                    "basic credentials": basic_credentials(stack.settings.twilio_account_sid, stack.token),
                                    **webhook_secrets},
                     bodies=[*bodies, reply, "forged zq8x"])
        assert leaks == [], leaks[:5]
    finally:
        stack.stop_all()
        rd.remove()
        await drop_database(services.admin_dsn, name)
