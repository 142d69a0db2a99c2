"""What the feed carries: a late reply is not missed, and each payload is api.md's shape."""

from __future__ import annotations

import asyncio

from conversations.shapes import message_json
from send_pipeline.writes import store_queued_message
from tests.events.support import feed_next
from tests.webhooks.support import add_lead, inbound_params, new_sid, settle
from webhooks.inbox import store_webhook

PHONE = "+12125550142"


async def _feed(http, firm, after: str) -> list[dict]:
    items: list[dict] = []
    while True:
        async with http.get("/v1/events", params={"after": after, "limit": "3"}, headers=firm.headers) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        items += page["items"]
        if not page["items"]:
            return items
        after = page["next"]


async def test_a_reply_filed_after_a_later_send_is_returned_by_the_feed(http, firm, deps, settings):
    async with asyncio.timeout(30):
        lead = await add_lead(deps.pool, firm.id, PHONE, external_id="crm-late", name="Lena Late")
        async with http.post("/v1/conversations", json={"lead_id": lead}, headers=firm.headers) as resp:
            conversation = (await resp.json())["conversation_id"]
        start = await feed_next(http, "", firm.headers)
        # Twilio received the reply first; its webhook is stored, but filed only after a later send
        stored = await store_webhook(deps, "inbound", inbound_params(
            account_sid=settings.twilio_account_sid, from_=PHONE, to=firm.number, body="Yes, count me in", sid=new_sid()),
            None)
        await deps.pool.execute("UPDATE twilio_inbox SET received_at = now() - interval '1 minute' WHERE id = $1",
                                stored.inbox_id)
        # the send as the web stores it (without its queue job: no worker of another test sends it)
        async with deps.pool.acquire() as conn:
            message_id = await conn.fetchval("SELECT nextval('messages_id_seq')")
            sent = message_json(await store_queued_message(conn, message_id, firm.id, conversation,
                                                           "Are you coming?", "u1"))
        seen_before_reply = await _feed(http, firm, start)
        assert [i["type"] for i in seen_before_reply] == ["message.created", "conversation.updated"]
        assert await settle(deps) == ["filed"]

        late = await _feed(http, firm, seen_before_reply[-1]["cursor"])
        assert [i["type"] for i in late] == ["message.received", "conversation.updated"]
        reply = late[0]["data"]
        assert reply["body"] == "Yes, count me in" and reply["direction"] == "in"
        assert late[1]["data"]["conversation_id"] == conversation

        # each payload is the shape the API answers with
        async with http.get(f"/v1/messages/{reply['id']}", headers=firm.headers) as resp:
            assert set(await resp.json()) == set(reply)
        assert seen_before_reply[0]["data"] == sent
        async with http.get(f"/v1/conversations/{conversation}", headers=firm.headers) as resp:
            opened = await resp.json()
        assert set(late[1]["data"]) <= set(opened)
        # the thread keeps Twilio's order: the reply sorts before the send filed ahead of it
        async with http.get(f"/v1/conversations/{conversation}/messages", headers=firm.headers) as resp:
            assert [m["id"] for m in (await resp.json())["items"]] == [reply["id"], sent["id"]]


async def test_a_stop_writes_consent_changed_and_the_conversation_that_can_no_longer_send(http, firm, deps, settings):
    async with asyncio.timeout(30):
        lead = await add_lead(deps.pool, firm.id, PHONE, external_id="crm-stop", name="Sam Stop")
        async with http.post("/v1/conversations", json={"lead_id": lead}, headers=firm.headers) as resp:
            assert resp.status == 201
        start = await feed_next(http, "", firm.headers)
        await store_webhook(deps, "inbound", inbound_params(
            account_sid=settings.twilio_account_sid, from_=PHONE, to=firm.number, body="STOP", sid=new_sid()), None)
        items = await _feed(http, firm, start)
        assert [i["type"] for i in items] == ["consent.changed", "conversation.updated", "lead.updated"]
        consent = items[0]["data"]
        assert {k: consent[k] for k in ("phone", "kind", "source")} == {
            "phone": PHONE, "kind": "opt_out", "source": "keyword:stop"}
        assert consent["at"]
        assert items[1]["data"]["can_send"] is False and items[1]["data"]["notice"]["code"] == "opted_out"
        # the lead's shape carries the sendable decision too, as GET /v1/leads/{id} answers it
        async with http.get(f"/v1/leads/{lead}", headers=firm.headers) as resp:
            assert items[2]["data"] == await resp.json()
        assert items[2]["data"]["sendable"] is False and items[2]["data"]["code"] == "opted_out"


async def _thread(http, firm, conversation: int, **params: str) -> dict:
    async with http.get(f"/v1/conversations/{conversation}/messages", params=params, headers=firm.headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_a_thread_read_in_pages_returns_a_reply_filed_late_between_its_pages(http, firm, deps, settings):
    async with asyncio.timeout(30):
        lead = await add_lead(deps.pool, firm.id, PHONE, external_id="crm-pages", name="Paula Pages")
        async with http.post("/v1/conversations", json={"lead_id": lead}, headers=firm.headers) as resp:
            conversation = (await resp.json())["conversation_id"]
        sends = []
        for text in ("First", "Second"):
            async with deps.pool.acquire() as conn:
                message_id = await conn.fetchval("SELECT nextval('messages_id_seq')")
                sends.append(message_json(await store_queued_message(conn, message_id, firm.id, conversation, text, "u1")))
        first = await _thread(http, firm, conversation, limit="1")
        assert [m["id"] for m in first["items"]] == [sends[0]["id"]] and first["next"]

        # a reply Twilio received a minute ago, filed only now: it sorts before both sends
        stored = await store_webhook(deps, "inbound", inbound_params(
            account_sid=settings.twilio_account_sid, from_=PHONE, to=firm.number, body="Late but here",
            sid=new_sid()), None)
        await deps.pool.execute("UPDATE twilio_inbox SET received_at = now() - interval '1 minute' WHERE id = $1",
                                stored.inbox_id)
        assert await settle(deps) == ["filed"]

        seen = [m["id"] for m in first["items"]]
        cursor = first["next"]
        while cursor:
            page = await _thread(http, firm, conversation, limit="1", after=cursor)
            seen += [m["id"] for m in page["items"]]
            cursor = page["next"]
        reply = await deps.pool.fetchval("SELECT id FROM messages WHERE conversation_id = $1 AND direction = 'in'",
                                         conversation)
        assert sorted(seen) == sorted([sends[0]["id"], sends[1]["id"], reply]) and len(seen) == 3
        # read again from the start, the thread is in Twilio's order
        assert [m["id"] for m in (await _thread(http, firm, conversation))["items"]] == [
            reply, sends[0]["id"], sends[1]["id"]]


async def test_a_thread_cursor_that_is_malformed_or_ahead_of_the_feed_is_400(http, firm, deps):
    lead = await add_lead(deps.pool, firm.id, PHONE, external_id="crm-bad", name="Bea Bad")
    async with http.post("/v1/conversations", json={"lead_id": lead}, headers=firm.headers) as resp:
        conversation = (await resp.json())["conversation_id"]
    for bad in ("12", "x.1", "1.", ".5", "0.3", "1.99999999999999"):
        async with http.get(f"/v1/conversations/{conversation}/messages", params={"after": bad},
                            headers=firm.headers) as resp:
            assert (resp.status, (await resp.json())["code"]) == (400, "invalid_cursor"), bad
