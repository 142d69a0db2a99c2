"""Outbound webhooks end to end: the real web, worker and `deliveries` worker, a real
receiver that verifies every request with `standardwebhooks.Webhook.verify`."""

from __future__ import annotations

import time

import pytest

from tests.outbound.support import Receiver, add_endpoint, receiving, wait_until
from tests.webhooks.support import add_lead, send_inbound

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

LEAD = "+16465557001"


async def test_an_inbound_stop_sends_a_signed_consent_change_and_a_reply_a_received_message(
        http, settings, pool, firm, deliveries_worker):
    async with receiving(Receiver()) as receiver:
        endpoint = await add_endpoint(http, firm, receiver.url, ["consent.changed", "message.received"])
        receiver.secrets = [endpoint["secret"]]
        await add_lead(pool, firm.id, LEAD, external_id="x1")
        answer = await send_inbound(http, settings, from_=LEAD, to=firm.number, body="Is parking free?")
        assert answer.status == 200
        await wait_until(lambda: receiver.of_type("message.received"), what="message.received")
        answer = await send_inbound(http, settings, from_=LEAD, to=firm.number, body="STOP")
        assert answer.status == 200
        await wait_until(lambda: receiver.of_type("consent.changed"), what="consent.changed")
    assert all(g.payload is not None for g in receiver.got), "every request verifies"
    received = receiver.of_type("message.received")[0].payload
    assert received["data"]["body"] == "Is parking free?"
    assert received["cursor"].isdigit() and received["timestamp"]
    change = receiver.of_type("consent.changed")[0]
    assert change.payload["data"]["phone"] == LEAD and change.payload["data"]["kind"] == "opt_out"
    assert change.headers["webhook-id"].startswith("msg_")
    assert {g.payload["type"] for g in receiver.got} <= {"consent.changed", "message.received"}


async def test_a_receiver_failing_twice_gets_the_same_webhook_id_three_times_and_the_log_has_three_attempts(
        http, settings, pool, firm, deliveries_worker):
    async with receiving(Receiver(answers=[500, 500])) as receiver:
        endpoint = await add_endpoint(http, firm, receiver.url, ["consent.changed"])
        receiver.secrets = [endpoint["secret"]]
        await send_inbound(http, settings, from_=LEAD, to=firm.number, body="STOP")
        await wait_until(lambda: len(receiver.got) >= 3, what="three requests")
        await wait_until(lambda: pool.fetchval(
            "SELECT status = 'delivered' FROM webhook_deliveries WHERE endpoint_id = $1", endpoint["id"]),
            what="the delivery delivered")
    ids = {g.headers["webhook-id"] for g in receiver.got}
    assert len(receiver.got) == 3 and len(ids) == 1
    attempts = await pool.fetch(
        """SELECT a.attempt, a.outcome, a.status_code FROM webhook_attempts a
           JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = $1 ORDER BY a.attempt""",
        endpoint["id"])
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in attempts] == [
        (1, "http_error", 500), (2, "http_error", 500), (3, "delivered", 200)]


async def test_a_410_disables_the_endpoint_tells_the_firm_and_a_patch_re_enables_it(
        http, settings, pool, firm, deliveries_worker):
    async with receiving(Receiver(answers=[410])) as receiver, receiving(Receiver()) as other:
        endpoint = await add_endpoint(http, firm, receiver.url, ["consent.changed"])
        watcher = await add_endpoint(http, firm, other.url, ["webhook_endpoint.disabled"])
        receiver.secrets, other.secrets = [endpoint["secret"]], [watcher["secret"]]
        await send_inbound(http, settings, from_=LEAD, to=firm.number, body="STOP")
        await wait_until(lambda: other.of_type("webhook_endpoint.disabled"), what="the disabled event")
        async with http.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=firm.headers) as r:
            shown = await r.json()
        assert shown["enabled"] is False and shown["disabled_reason"] == "gone"
        assert other.of_type("webhook_endpoint.disabled")[0].payload["data"]["endpoint_id"] == endpoint["id"]
        assert len(receiver.got) == 1
        async with http.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={}, headers=firm.headers) as r:
            assert r.status == 200 and (await r.json())["enabled"] is True
        await wait_until(lambda: len(receiver.got) >= 2, what="the delivery after re-enabling")
    assert receiver.got[0].headers["webhook-id"] == receiver.got[1].headers["webhook-id"]
    assert receiver.got[1].payload["type"] == "consent.changed"


async def test_during_a_secret_rotation_a_receiver_with_either_secret_verifies(
        http, settings, pool, firm, deliveries_worker):
    async with receiving(Receiver()) as receiver:
        endpoint = await add_endpoint(http, firm, receiver.url, ["consent.changed"])
        async with http.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=firm.headers) as r:
            assert r.status == 200
            rotated = await r.json()
        old, new = endpoint["secret"], rotated["secret"]
        assert old != new and new.startswith("whsec_")
        await send_inbound(http, settings, from_=LEAD, to=firm.number, body="STOP")
        await wait_until(lambda: receiver.got, what="a delivery")
    item = receiver.got[0]
    assert len(item.headers["webhook-signature"].split(" ")) == 2
    assert receiver.verified(old, item) is not None
    assert receiver.verified(new, item) is not None
    assert receiver.verified("whsec_" + "A" * 32, item) is None


async def test_a_hanging_receiver_delays_neither_another_endpoint_nor_a_send(
        http, settings, pool, firm, make_firm, deliveries_worker):
    from tests.webhooks.support import open_thread, post_message

    other_firm = await make_firm()
    async with receiving(Receiver(answers=["hang"] * 20)) as hanging, receiving(Receiver()) as healthy:
        await add_endpoint(http, firm, hanging.url, ["consent.changed"])
        healthy_endpoint = await add_endpoint(http, other_firm, healthy.url, ["consent.changed"])
        other_endpoint = await add_endpoint(http, firm, healthy.url.replace("/hook", "/hook?second=1"),
                                            ["consent.changed"])
        healthy.secrets = [healthy_endpoint["secret"], other_endpoint["secret"]]
        for i in range(4):  # more than its two lanes' worth, all hanging
            await send_inbound(http, settings, from_=f"+1646555800{i}", to=firm.number, body="STOP")
        await wait_until(lambda: len(hanging.got) >= 2, what="the hanging receiver to hold its lanes")
        started = time.monotonic()
        await send_inbound(http, settings, from_="+16465558100", to=other_firm.number, body="STOP")
        await send_inbound(http, settings, from_="+16465558101", to=firm.number, body="STOP")
        await wait_until(lambda: len(healthy.got) >= 6, timeout=10,
                         what="the other firm's and the other endpoint's deliveries")
        took = time.monotonic() - started
        conversation_id = await open_thread(http, pool, firm, "+16465558200", external_id="send-1")
        status, sent = await post_message(http, firm, conversation_id, "Doors open at 9")
        assert status == 202, sent
        await wait_until(lambda: pool.fetchval("SELECT status IN ('sent', 'delivered') FROM messages WHERE id = $1",
                                               sent["id"]), timeout=10, what="the send")
        assert len(hanging.got) <= 2, "at most two requests in flight to one endpoint"
    assert took < 5, f"the healthy deliveries waited {took:.1f}s behind a hanging receiver"
