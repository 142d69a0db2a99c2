"""End to end: the CRM updates and deletes signups (POST again, PATCH, DELETE) on the real
web app, with a real `leadsms worker` and the Twilio simulator answering Lookup and sends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from tests.consent.support import picker, sim_inbound
from tests.intake.helpers import get_lead, post_lead, settled, sim_lookups
from tests.support import wait_for

pytestmark = pytest.mark.e2e


async def open_conversation(http: aiohttp.ClientSession, firm, lead_id: int) -> dict:
    async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=firm.headers) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()


async def conversation(http: aiohttp.ClientSession, firm, conversation_id: int) -> dict:
    async with http.get(f"/v1/conversations/{conversation_id}", headers=firm.headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def thread(http: aiohttp.ClientSession, firm, conversation_id: int) -> list[dict]:
    async with http.get(f"/v1/conversations/{conversation_id}/messages", headers=firm.headers) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["items"]


async def send(http: aiohttp.ClientSession, firm, conversation_id: int, body: str, **extra) -> tuple[int, dict]:
    async with http.post(f"/v1/conversations/{conversation_id}/messages", json={"body": body, **extra},
                         headers=firm.user()) as resp:
        return resp.status, await resp.json()


async def patch(http: aiohttp.ClientSession, firm, lead_id: int, **fields) -> tuple[int, dict]:
    async with http.patch(f"/v1/leads/{lead_id}", json=fields, headers=firm.headers) as resp:
        return resp.status, await resp.json()


async def delete(http: aiohttp.ClientSession, firm, lead_id: int) -> int:
    async with http.delete(f"/v1/leads/{lead_id}", headers=firm.headers) as resp:
        return resp.status


async def test_a_repost_with_a_new_phone_moves_the_lead_and_keeps_the_old_thread(ready_worker, http, firm, sim, pool):
    _, first = await post_lead(http, firm, external_id="crm-move", name="Robin Mover", phone="(212) 555-2001")
    lead_id = first["lead_id"]
    await settled(http, firm, lead_id)
    old = await open_conversation(http, firm, lead_id)
    status, sent = await send(http, firm, old["conversation_id"], "See you Tuesday")
    assert status == 202, sent

    status, body = await post_lead(http, firm, external_id="crm-move", name="Robin Mover", phone="(212) 555-2002")

    assert (status, body["lead_id"], body["updated"], body["phone_status"]) == (200, lead_id, ["phone"], "pending")
    lead = await settled(http, firm, lead_id)
    assert (lead["phone"], lead["phone_status"], lead["line_type"], lead["sendable"]) == (
        "+12125552002", "valid", "mobile", True)
    assert len(await sim_lookups(sim, "+12125552002")) == 1
    assert [(i["lead_id"], i["phone"]) for i in await picker(http, firm, "Robin")] == [(lead_id, "+12125552002")]
    new = await open_conversation(http, firm, lead_id)
    assert new["conversation_id"] != old["conversation_id"]
    assert (new["phone"], new["lead_id"], new["can_send"]) == ("+12125552002", lead_id, True)
    left = await conversation(http, firm, old["conversation_id"])
    assert (left["phone"], left["lead_id"], left["name"]) == ("+12125552001", None, None)
    # A reply from the old phone still threads into the old conversation, with its history.
    await sim_inbound(sim, **{"from": "+12125552001", "to": firm.number, "body": "Which room?"})
    messages = await wait_for(
        lambda: _bodies_when(http, firm, old["conversation_id"], 2), timeout=10, what="the reply to thread")
    assert messages == ["See you Tuesday", "Which room?"]
    assert await thread(http, firm, new["conversation_id"]) == []
    phones = await pool.fetch("SELECT phone_e164 FROM lead_phones WHERE lead_id = $1 ORDER BY phone_e164", lead_id)
    assert [r["phone_e164"] for r in phones] == ["+12125552001", "+12125552002"]


async def _bodies_when(http, firm, conversation_id: int, count: int) -> list[str] | None:
    items = await thread(http, firm, conversation_id)
    return [m["body"] for m in items] if len(items) >= count else None


async def test_a_repost_changing_only_the_name_changes_only_the_name(ready_worker, http, firm, sim, pool, enqueued):
    _, first = await post_lead(http, firm, external_id="crm-rename", name="Sam Before", phone="(212) 555-2003")
    lead_id = first["lead_id"]
    before = await settled(http, firm, lead_id)

    status, body = await post_lead(http, firm, external_id="crm-rename", name="Sam After", phone="(212) 555-2003")

    assert (status, body["updated"], body["phone_status"]) == (200, ["name"], "valid")
    _, after = await get_lead(http, firm, lead_id)
    assert after == {**before, "name": "Sam After"}
    assert enqueued.of("validate_lead") == [(lead_id,)]
    assert len(await sim_lookups(sim, "+12125552003")) == 1
    status, again = await post_lead(http, firm, external_id="crm-rename", name="Sam After", phone="(212) 555-2003")
    assert (status, again["duplicate"]) == (202, True)


async def test_an_opted_out_lead_moving_to_a_new_number_is_textable_there_only(ready_worker, http, firm, sim, pool):
    _, first = await post_lead(http, firm, external_id="crm-stop", name="Ola Stopper", phone="(212) 555-2004")
    lead_id = first["lead_id"]
    await settled(http, firm, lead_id)
    old = await open_conversation(http, firm, lead_id)
    await sim_inbound(sim, **{"from": "+12125552004", "to": firm.number, "body": "STOP"})
    await wait_for(lambda: pool.fetchval("SELECT opted_out FROM phone_flags WHERE firm_id = $1 AND phone_e164 = $2",
                                         firm.id, "+12125552004"), timeout=10, what="the opt-out")

    status, body = await patch(http, firm, lead_id, phone="+1 212 555 2005")

    assert (status, body["updated"], body["lead_id"]) == (200, ["phone"], lead_id)
    await settled(http, firm, lead_id)
    new = await open_conversation(http, firm, lead_id)
    assert (new["phone"], new["can_send"]) == ("+12125552005", True)
    status, sent = await send(http, firm, new["conversation_id"], "Your new number works")
    assert status == 202, sent
    left = await conversation(http, firm, old["conversation_id"])
    assert (left["can_send"], left["notice"]["code"]) == (False, "opted_out")
    status, refused = await send(http, firm, old["conversation_id"], "Hello?")
    assert (status, refused["code"]) == (409, "opted_out")
    flags = await pool.fetchval("SELECT count(*) FROM phone_flags WHERE phone_e164 = '+12125552005'")
    assert flags == 0  # consent never travels to the new number


async def test_a_changed_phone_cancels_the_scheduled_messages_to_the_old_one(ready_worker, http, firm, pool):
    _, first = await post_lead(http, firm, external_id="crm-sched", phone="(212) 555-2006")
    lead_id = first["lead_id"]
    await settled(http, firm, lead_id)
    conv = await open_conversation(http, firm, lead_id)
    send_at = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0).isoformat()
    status, scheduled = await send(http, firm, conv["conversation_id"], "Reminder: tomorrow 9am", send_at=send_at)
    assert (status, scheduled["status"]) == (202, "scheduled"), scheduled

    status, _ = await patch(http, firm, lead_id, phone="(212) 555-2007")

    assert status == 200
    async with http.get(f"/v1/messages/{scheduled['id']}", headers=firm.headers) as resp:
        assert (await resp.json())["status"] == "canceled"


async def test_a_new_signed_up_at_relinks_the_phone_to_its_newest_signup(ready_worker, http, firm, pool):
    early = datetime(2024, 1, 1, tzinfo=timezone.utc)
    _, a = await post_lead(http, firm, external_id="crm-a", phone="(212) 555-2008", signed_up_at=early.isoformat())
    _, b = await post_lead(http, firm, external_id="crm-b", phone="(212) 555-2008",
                           signed_up_at=(early + timedelta(days=1)).isoformat())
    await settled(http, firm, a["lead_id"])
    await settled(http, firm, b["lead_id"])
    conv = await open_conversation(http, firm, a["lead_id"])
    assert conv["lead_id"] == b["lead_id"]

    status, body = await patch(http, firm, a["lead_id"], signed_up_at=(early + timedelta(days=2)).isoformat())

    assert (status, body["updated"]) == (200, ["signed_up_at"])
    assert (await conversation(http, firm, conv["conversation_id"]))["lead_id"] == a["lead_id"]


async def test_deleting_the_newest_of_three_signups_relinks_to_the_next(ready_worker, http, firm, make_firm, pool):
    other = await make_firm()
    early = datetime(2024, 3, 1, tzinfo=timezone.utc)
    ids = []
    for day in range(3):
        _, body = await post_lead(http, firm, phone="(212) 555-2009", signed_up_at=(early + timedelta(days=day)).isoformat())
        ids.append(body["lead_id"])
    _, theirs = await post_lead(http, other, phone="(212) 555-2009")
    for lead_id in ids:
        await settled(http, firm, lead_id)
    await settled(http, other, theirs["lead_id"])
    conv = await open_conversation(http, firm, ids[0])
    status, _ = await send(http, firm, conv["conversation_id"], "Thanks for coming")
    assert status == 202
    assert conv["lead_id"] == ids[2]

    assert await delete(http, firm, ids[2]) == 204

    assert (await conversation(http, firm, conv["conversation_id"]))["lead_id"] == ids[1]
    assert (await get_lead(http, firm, ids[2]))[0] == 404
    assert await delete(http, firm, ids[2]) == 404
    assert await delete(http, other, ids[1]) == 404  # another firm's signup is not theirs to delete
    assert await delete(http, firm, ids[1]) == 204
    assert await delete(http, firm, ids[0]) == 204
    left = await conversation(http, firm, conv["conversation_id"])
    assert (left["lead_id"], left["name"]) == (None, None)
    assert [m["body"] for m in await thread(http, firm, conv["conversation_id"])] == ["Thanks for coming"]
    assert (await get_lead(http, other, theirs["lead_id"]))[1]["phone_status"] == "valid"


async def test_a_patch_refuses_bad_fields_and_other_firms_leads(ready_worker, http, firm, make_firm, pool):
    other = await make_firm()
    _, body = await post_lead(http, firm, external_id="crm-patch", phone="(212) 555-2010")
    lead_id = body["lead_id"]
    await settled(http, firm, lead_id)
    before = await pool.fetchrow("SELECT * FROM leads WHERE id = $1", lead_id)

    assert await patch(http, firm, lead_id, external_id="x") == (400, {
        "error": "external_id cannot be changed (fields: name, email, event, phone, signed_up_at, timezone, postal_code).",
        "code": "invalid_field", "field": "external_id"})
    status, bad = await patch(http, firm, lead_id, signed_up_at="2024-01-01T00:00:00")
    assert (status, bad["code"], bad["field"]) == (400, "invalid_field", "signed_up_at")
    status, empty = await patch(http, firm, lead_id)
    assert (status, empty["code"]) == (400, "missing_field")
    status, missing = await patch(http, other, lead_id, name="Stolen")
    assert (status, missing["code"]) == (404, "not_found")
    assert await pool.fetchrow("SELECT * FROM leads WHERE id = $1", lead_id) == before
    status, same = await patch(http, firm, lead_id, name=before["name"])
    assert (status, same["updated"]) == (200, [])


async def feed_since(http: aiohttp.ClientSession, firm, cursor: str) -> list[dict]:
    async with http.get("/v1/events", params={"after": cursor, "limit": "100"}, headers=firm.headers) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["items"]


async def test_updates_and_deletes_are_in_the_change_feed(ready_worker, http, firm, pool):
    _, body = await post_lead(http, firm, external_id="crm-feed", name="Fay Feed", phone="(212) 555-2011")
    lead_id = body["lead_id"]
    await settled(http, firm, lead_id)
    conv = await open_conversation(http, firm, lead_id)
    async with http.get("/v1/events", headers=firm.headers) as resp:
        start = (await resp.json())["next"]

    assert (await patch(http, firm, lead_id, name="Fay Renamed"))[0] == 200
    assert await delete(http, firm, lead_id) == 204

    items = await feed_since(http, firm, start)
    assert [(i["type"], i["data"].get("lead_id"), i["data"].get("name")) for i in items] == [
        ("lead.updated", lead_id, "Fay Renamed"),
        ("conversation.updated", lead_id, "Fay Renamed"),
        ("lead.deleted", lead_id, None),
        ("conversation.updated", None, None),
    ]
    assert items[1]["data"]["conversation_id"] == items[3]["data"]["conversation_id"] == conv["conversation_id"]
