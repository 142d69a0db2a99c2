"""End to end: erasing a person (POST /v1/erasure) on the real web app with a real worker,
the Twilio simulator holding their message records."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.consent.support import sim_inbound
from tests.intake.helpers import get_lead, post_lead, settled
from tests.intake.test_lead_lifecycle import open_conversation, send, thread
from tests.support import wait_for

pytestmark = pytest.mark.e2e

PERSON = {"name": "Erin Erasable", "email": "erin.erasable@example.com"}
OLD, NEW = "+12125553001", "+12125553002"
SECRETS = ("Erin Erasable", "erin.erasable@example.com", "secret plan", "secret reply", "2125553001",
           "2125553002", "555-3001", "555-3002")


async def erase(http: aiohttp.ClientSession, firm, **subject) -> int:
    async with http.post("/v1/erasure", json=subject, headers=firm.user("dpo-1")) as resp:
        body = await resp.json()
        assert resp.status == 202, body
        return body["erasure_id"]


async def erasure_done(http: aiohttp.ClientSession, firm, erasure_id: int, timeout: float = 30) -> dict:
    async def done():
        async with http.get(f"/v1/erasure/{erasure_id}", headers=firm.headers) as resp:
            body = await resp.json()
            return body if body["status"] == "done" else None

    return await wait_for(done, timeout=timeout, interval=0.1, what=f"erasure {erasure_id} to finish")


async def rows_holding(pool, needles: tuple[str, ...], *, skip_firm: int) -> list[tuple[str, str]]:
    """(table, row) of every row of every table of the schema whose text holds a needle,
    but the global Lookup cache and the rows of `skip_firm` (another firm's own data)."""
    tables = [r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    found = []
    for table in tables:
        if table == "phone_lines":
            continue
        for row in await pool.fetch(f'SELECT row_to_json(t)::text AS j FROM "{table}" t'):
            data = json.loads(row["j"])
            if data.get("firm_id") == skip_firm:
                continue
            if any(n.lower() in row["j"].lower() for n in needles):
                found.append((table, row["j"]))
    return found


async def sim_messages_of(sim: str, *phones: str) -> list[dict]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{sim}/sim/messages") as resp:
            messages = (await resp.json())["messages"]
    return [m for m in messages if m.get("to") in phones or m.get("from") in phones]


async def test_erasing_a_person_leaves_nothing_of_them_but_hashed_consent(ready_worker, deliveries_worker, http, firm,
                                                                        make_firm, sim, pool):
    other = await make_firm()
    # the firm's CRM takes every event by webhook: the delivery rows carry the person too
    async with http.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/crm", "events": ["*"]},
                         headers=firm.headers) as resp:
        assert resp.status == 201
    _, theirs = await post_lead(http, other, external_id="crm-e", **PERSON, phone=NEW)
    _, first = await post_lead(http, firm, external_id="crm-e", **PERSON, phone=OLD)
    await settled(http, firm, first["lead_id"])
    old_conv = await open_conversation(http, firm, first["lead_id"])
    assert (await send(http, firm, old_conv["conversation_id"], "secret plan for the old phone"))[0] == 202
    await post_lead(http, firm, external_id="crm-e", **PERSON, phone=NEW)  # the CRM corrects the number
    await settled(http, firm, first["lead_id"])
    _, second = await post_lead(http, firm, external_id="crm-e2", **PERSON, phone=NEW)
    await settled(http, firm, second["lead_id"])
    new_conv = await open_conversation(http, firm, second["lead_id"])
    assert (await send(http, firm, new_conv["conversation_id"], "secret plan, take two"))[0] == 202
    await wait_for(lambda: _count(pool, "direction = 'out' AND twilio_sid IS NOT NULL", firm.id, 2),
                   timeout=15, what="both sends to reach Twilio")
    await sim_inbound(sim, **{"from": NEW, "to": firm.number, "body": "secret reply"})
    await sim_inbound(sim, **{"from": NEW, "to": firm.number, "body": "STOP"})
    await wait_for(lambda: _count(pool, "direction = 'in'", firm.id, 2), timeout=15, what="the replies to be filed")
    assert len(await sim_messages_of(sim, OLD, NEW)) >= 2
    await wait_for(lambda: pool.fetchval(
        "SELECT count(*) > 0 FROM webhook_deliveries WHERE firm_id = $1 AND event_type = 'consent.changed'", firm.id),
        timeout=15, what="the opt-out's webhook delivery row")
    stored_sids = [r["twilio_sid"] for r in await pool.fetch("SELECT twilio_sid FROM messages WHERE firm_id = $1", firm.id)]

    erasure_id = await erase(http, firm, phone="(212) 555-3001")  # the old phone finds the whole person

    try:
        status = await erasure_done(http, firm, erasure_id)
    except AssertionError:
        raise AssertionError([dict(r) for r in await pool.fetch("SELECT * FROM erased_messages")] +
                             [dict(r) for r in await pool.fetch("SELECT id, erased_at, done_at FROM erasures")])
    assert status["erasure_id"] == erasure_id and status["done_at"] is not None
    assert await rows_holding(pool, SECRETS, skip_firm=other.id) == []
    assert await sim_messages_of(sim, OLD, NEW) == []
    hashed = await pool.fetch("SELECT phone_e164, kind FROM consent_events WHERE firm_id = $1", firm.id)
    assert [r["kind"] for r in hashed] == ["opt_out"] and hashed[0]["phone_e164"].startswith("erased:")
    record = await pool.fetchrow("SELECT requested_by, phone_hashes FROM erasures WHERE id = $1", erasure_id)
    assert record["requested_by"] == "dpo-1" and hashed[0]["phone_e164"] in record["phone_hashes"]
    assert len(record["phone_hashes"]) == 2
    # A late callback for an erased message is answered and not stored.
    assert await pool.fetchval("SELECT count(*) FROM twilio_inbox WHERE message_sid = ANY($1)", stored_sids) == 0
    # The other firm's signup of the same phone is untouched.
    _, kept = await get_lead(http, other, theirs["lead_id"])
    assert (kept["name"], kept["phone"], kept["phone_status"]) == (PERSON["name"], NEW, "valid")
    # A new signup with the opted-out phone is still opted out; the other phone is not.
    _, again = await post_lead(http, firm, external_id="crm-e3", name="Back Again", phone=NEW)
    lead = await settled(http, firm, again["lead_id"])
    assert (lead["sendable"], lead["code"]) == (False, "opted_out")
    _, fresh = await post_lead(http, firm, external_id="crm-e4", name="Back Again", phone=OLD)
    assert (await settled(http, firm, fresh["lead_id"]))["sendable"] is True


async def _count(pool, where: str, firm_id: int, at_least: int) -> bool:
    return await pool.fetchval(f"SELECT count(*) FROM messages WHERE firm_id = $1 AND {where}", firm_id) >= at_least


async def test_a_send_in_flight_during_an_erasure_is_never_stored(ready_worker, http, firm, sim, pool):
    late = "+12125550750"  # the simulator answers this number's create late
    _, body = await post_lead(http, firm, external_id="crm-late", name="Lee Late", phone=late)
    await settled(http, firm, body["lead_id"])
    conv = await open_conversation(http, firm, body["lead_id"])
    status, message = await send(http, firm, conv["conversation_id"], "secret plan in flight")
    assert status == 202
    await wait_for(lambda: pool.fetchval("SELECT status = 'sending' FROM messages WHERE id = $1", message["id"]),
                   timeout=10, interval=0.02, what="the send to be with Twilio")

    erasure_id = await erase(http, firm, lead_id=body["lead_id"])

    await erasure_done(http, firm, erasure_id)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE firm_id = $1", firm.id) == 0
    assert await sim_messages_of(sim, late) == []
    assert await rows_holding(pool, ("Lee Late", "secret plan", "2125550750"), skip_firm=-1) == []


async def test_erasure_refuses_bad_requests(http, firm, make_firm, pool):
    other = await make_firm()
    _, body = await post_lead(http, firm, external_id="crm-x", phone="(212) 555-3003")
    async with http.post("/v1/erasure", json={"phone": "+12125553003"}, headers=firm.headers) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, "missing_user")
    for payload, status, code in [({}, 400, "invalid_erasure"),
                                  ({"phone": "+12125553003", "lead_id": body["lead_id"]}, 400, "invalid_erasure"),
                                  ({"phone": "not a phone"}, 400, "invalid_phone"),
                                  ({"lead_id": "7"}, 404, "not_found")]:
        async with http.post("/v1/erasure", json=payload, headers=firm.user()) as resp:
            assert (resp.status, (await resp.json())["code"]) == (status, code), payload
    async with http.post("/v1/erasure", json={"lead_id": body["lead_id"]}, headers=other.user()) as resp:
        assert resp.status == 404  # another firm's signup
    async with http.get("/v1/erasure/999999", headers=firm.headers) as resp:
        assert resp.status == 404
    assert await pool.fetchval("SELECT count(*) FROM erasures") == 0


async def test_erasure_without_a_key_answers_503(settings, deps, broker):
    from dataclasses import replace

    from shared.app import create_app
    from tests.support import serve_app

    app = create_app(settings, deps=replace(deps, settings=settings.replace(erasure_key=None)), broker=broker)
    firm_key = None
    async with serve_app(app) as base:
        from firms.service import add_firm
        created = await add_firm(settings.database_url, "Keyless", "+16465559900")
        firm_key = created["api_key"]
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{base}/v1/erasure", json={"phone": "+12125553004"},
                              headers={"Authorization": f"Bearer {firm_key}", "X-User-Id": "u"}) as resp:
                assert (resp.status, (await resp.json())["code"]) == (503, "erasure_not_configured")
