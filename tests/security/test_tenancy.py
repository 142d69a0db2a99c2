"""A firm never sees or touches another firm's leads, conversations or messages.

Firm B owns a lead, a conversation with a paused reply and a message. Firm A, with its
own valid key, tries every /v1 route with B's ids: each answer is the same 404 an unknown
id gets (existence is not leaked), and B's rows are exactly as they were.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import pytest
from dramatiq.brokers.stub import StubBroker

from shared.app import create_app
from shared.config import Settings
from tests.security.support import add_conversation, add_lead, add_message, error_of

PHONE = "+12125550170"
OPTED_OUT = "+12125550171"


@pytest.fixture
async def victim(make_firm, pool) -> dict[str, Any]:
    b = await make_firm("Firm B", "+16465550200")
    lead = await add_lead(pool, b.id, PHONE, name="Bianca Secret", email="bianca@b.example")
    conv = await add_conversation(pool, b.id, lead, PHONE)
    msg = await add_message(pool, b.id, conv, "B's private note")
    await pool.execute(
        """INSERT INTO phone_flags (firm_id, phone_e164, review_pending, review_message_id)
           VALUES ($1, $2, true, $3)""", b.id, PHONE, msg)
    # and a staff opt-out of another phone of B's, for the consent routes
    await pool.execute(
        """INSERT INTO phone_flags (firm_id, phone_e164, opted_out, opted_out_at, opted_out_source)
           VALUES ($1, $2, true, now(), 'staff:bob')""", b.id, OPTED_OUT)
    await pool.execute("INSERT INTO consent_events (firm_id, phone_e164, kind, source) VALUES ($1, $2, 'opt_out', 'staff:bob')",
                       b.id, OPTED_OUT)
    scheduled = await pool.fetchval(
        """INSERT INTO messages (firm_id, conversation_id, direction, body, status, send_at)
           VALUES ($1, $2, 'out', 'B''s note for later', 'scheduled', now() + interval '1 day') RETURNING id""",
        b.id, conv)
    # Disabled, so that a deliveries worker another test file left running never fans B's
    # events out to it: its delivery bookkeeping would change under the snapshot, by no attack.
    endpoint = await pool.fetchval(
        """INSERT INTO webhook_endpoints (firm_id, url, event_types, secret_enc, enabled, disabled_at, disabled_reason)
           VALUES ($1, 'https://crm.b.example/hook', '{*}', 'plain:whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJC',
                   false, now(), 'failing') RETURNING id""",
        b.id)
    return {"firm": b, "lead": lead, "conv": conv, "msg": msg, "scheduled": scheduled, "endpoint": endpoint}


async def snapshot(pool, firm_id: int) -> list:
    rows = []
    for table in ("leads", "conversations", "messages", "phone_flags", "consent_events", "phone_flag_events",
                  "webhook_endpoints"):
        rows.append((table, [tuple(r) for r in await pool.fetch(f"SELECT * FROM {table} WHERE firm_id = $1 ORDER BY 1", firm_id)]))
    return rows


async def same_404_as_unknown(http, method: str, path: str, unknown_path: str, headers: dict, json: Any) -> None:
    async with http.request(method, path, headers=headers, json=json) as resp:
        assert resp.status == 404, (method, path, resp.status, await resp.text())
        theirs = await error_of(resp)
    async with http.request(method, unknown_path, headers=headers, json=json) as resp:
        assert resp.status == 404
        unknown = await error_of(resp)
    assert theirs == unknown, "another firm's id must read exactly like an unknown one"


Attack = Callable[..., Awaitable[None]]
UNKNOWN = 9_000_000


async def lead_get(http, a, v, pool):
    await same_404_as_unknown(http, "GET", f"/v1/leads/{v['lead']}", f"/v1/leads/{UNKNOWN}", a.headers, None)


async def lead_post(http, a, v, pool):
    """Posting B's external_id makes A's own lead; B's is untouched (checked by snapshot)."""
    ext = await pool.fetchval("SELECT external_id FROM leads WHERE id = $1", v["lead"])
    async with http.post("/v1/leads", json={"external_id": ext, "name": "A's lead", "phone": PHONE},
                         headers=a.headers) as resp:
        assert resp.status == 202
        body = await resp.json()
    assert body["lead_id"] != v["lead"] and body.get("duplicate") is False
    assert await pool.fetchval("SELECT firm_id FROM leads WHERE id = $1", body["lead_id"]) == a.id


async def picker(http, a, v, pool):
    for q in ("Bianca", "bianca@b", "212555017", "Secret"):
        async with http.get("/v1/leads/sendable", params={"q": q}, headers=a.headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["items"] == [], q


async def conversation_open_for_lead(http, a, v, pool):
    async with http.post("/v1/conversations", json={"lead_id": v["lead"]}, headers=a.headers) as resp:
        assert resp.status == 404
        theirs = await error_of(resp)
    async with http.post("/v1/conversations", json={"lead_id": UNKNOWN}, headers=a.headers) as resp:
        assert theirs == await error_of(resp)


async def conversation_list(http, a, v, pool):
    async with http.get("/v1/conversations", params={"limit": "100"}, headers=a.headers) as resp:
        assert resp.status == 200
        items = (await resp.json())["items"]
    assert v["conv"] not in {i["conversation_id"] for i in items}
    assert all(i["phone"] != PHONE or i["conversation_id"] != v["conv"] for i in items)


async def conversation_get(http, a, v, pool):
    await same_404_as_unknown(http, "GET", f"/v1/conversations/{v['conv']}", f"/v1/conversations/{UNKNOWN}",
                              a.headers, None)


async def thread_get(http, a, v, pool):
    await same_404_as_unknown(http, "GET", f"/v1/conversations/{v['conv']}/messages",
                              f"/v1/conversations/{UNKNOWN}/messages", a.headers, None)


async def thread_send(http, a, v, pool):
    await same_404_as_unknown(http, "POST", f"/v1/conversations/{v['conv']}/messages",
                              f"/v1/conversations/{UNKNOWN}/messages", a.user("intruder"), {"body": "hello from A"})


async def review(http, a, v, pool):
    for decision in ("keep", "opt_out"):
        await same_404_as_unknown(http, "POST", f"/v1/conversations/{v['conv']}/review",
                                  f"/v1/conversations/{UNKNOWN}/review", a.user("intruder"), {"decision": decision})


async def message_get(http, a, v, pool):
    await same_404_as_unknown(http, "GET", f"/v1/messages/{v['msg']}", f"/v1/messages/{UNKNOWN}", a.headers, None)


async def opt_out_post(http, a, v, pool):
    """Opting out B's phone makes A's own opt-out; B's is untouched (checked by snapshot)."""
    async with http.post("/v1/opt-outs", json={"phone": OPTED_OUT}, headers=a.user("intruder")) as resp:
        assert (resp.status, (await resp.json())["source"]) == (201, "staff:intruder")


async def opt_out_list(http, a, v, pool):
    async with http.get("/v1/opt-outs", headers=a.headers) as resp:
        assert await resp.json() == {"items": [], "next": None}


async def opt_out_delete(http, a, v, pool):
    await same_404_as_unknown(http, "DELETE", f"/v1/opt-outs/%2B{OPTED_OUT[1:]}", "/v1/opt-outs/%2B12125550999",
                              a.user("intruder"), None)


async def consent_get(http, a, v, pool):
    for fmt in ("json", "csv"):
        async with http.get(f"/v1/consent/%2B{OPTED_OUT[1:]}", params={"format": fmt}, headers=a.headers) as resp:
            assert resp.status == 200
            text = await resp.text()
        assert "staff:bob" not in text and "opt_out" not in text.split("\n", 1)[-1]


async def message_cancel(http, a, v, pool):
    """B's scheduled message cannot be cancelled with A's key (it stays scheduled: snapshot)."""
    await same_404_as_unknown(http, "DELETE", f"/v1/messages/{v['scheduled']}", f"/v1/messages/{UNKNOWN}",
                              a.headers, None)


async def _record(pool, firm_id: int, data: dict) -> None:
    import events

    async with pool.acquire() as conn:
        await events.record(conn, firm_id, "lead.updated", data)


async def feed_get(http, a, v, pool):
    """B's events never show in A's feed, and B's cursors are not A's."""
    await _record(pool, v["firm"].id, {"lead_id": v["lead"], "name": "Bianca Secret"})
    async with http.get("/v1/events", params={"after": "0"}, headers=a.headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["items"] == []
    b_next = await pool.fetchval("SELECT last_seq FROM event_counters WHERE firm_id = $1", v["firm"].id)
    async with http.get("/v1/events", params={"after": str(b_next)}, headers=a.headers) as resp:
        assert resp.status == 400 and (await error_of(resp))["code"] == "invalid_cursor"


async def stream_token_and_stream(http, a, v, pool):
    """A's stream token opens A's stream: B's events, before and after it opens, never show."""
    from tests.events.support import open_stream

    await _record(pool, v["firm"].id, {"lead_id": v["lead"], "name": "Bianca Secret"})
    async with http.post("/v1/stream-tokens", headers=a.headers) as resp:
        assert resp.status == 201
        token = (await resp.json())["token"]
    stream = await open_stream(http, "", token, after="0")
    try:
        await _record(pool, v["firm"].id, {"lead_id": v["lead"], "name": "Bianca Again"})
        await _record(pool, a.id, {"lead_id": 1, "name": "A's own"})
        _, kind, item = await stream.next_event(timeout=20)
        assert item["data"] == {"lead_id": 1, "name": "A's own"}
    finally:
        stream.close()


async def lead_patch(http, a, v, pool):
    await same_404_as_unknown(http, "PATCH", f"/v1/leads/{v['lead']}", f"/v1/leads/{UNKNOWN}", a.headers,
                              {"name": "Renamed by A", "phone": "+12125550199"})


async def lead_delete(http, a, v, pool):
    await same_404_as_unknown(http, "DELETE", f"/v1/leads/{v['lead']}", f"/v1/leads/{UNKNOWN}", a.headers, None)


async def erasure_post(http, a, v, pool):
    """A cannot erase B's signup by id; erasing B's phone in A erases only A's (nothing)."""
    await same_404_as_unknown(http, "POST", "/v1/erasure", "/v1/erasure", a.user(), {"lead_id": v["lead"]})
    async with http.post("/v1/erasure", json={"phone": PHONE}, headers=a.user()) as resp:
        assert resp.status == 202
    assert await pool.fetchval("SELECT firm_id FROM erasures") == a.id


async def erasure_get(http, a, v, pool):
    theirs = await pool.fetchval("INSERT INTO erasures (firm_id, requested_by) VALUES ($1, 'dpo') RETURNING id",
                                 v["firm"].id)
    await same_404_as_unknown(http, "GET", f"/v1/erasure/{theirs}", f"/v1/erasure/{UNKNOWN}", a.headers, None)


async def webhook_endpoint_post(http, a, v, pool):
    """A's new endpoint is A's; B's list is untouched (the snapshot)."""
    async with http.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/a", "events": ["*"]},
                         headers=a.headers) as resp:
        assert resp.status == 201
    assert await pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE firm_id = $1", a.id) == 1


async def webhook_endpoint_list(http, a, v, pool):
    async with http.get("/v1/webhook-endpoints", headers=a.headers) as resp:
        assert resp.status == 200 and (await resp.json())["items"] == []


async def webhook_endpoint_get(http, a, v, pool):
    await same_404_as_unknown(http, "GET", f"/v1/webhook-endpoints/{v['endpoint']}",
                              f"/v1/webhook-endpoints/{UNKNOWN}", a.headers, None)


async def webhook_endpoint_patch(http, a, v, pool):
    await same_404_as_unknown(http, "PATCH", f"/v1/webhook-endpoints/{v['endpoint']}",
                              f"/v1/webhook-endpoints/{UNKNOWN}", a.headers, {"url": "http://127.0.0.1:9/stolen"})


async def webhook_endpoint_delete(http, a, v, pool):
    await same_404_as_unknown(http, "DELETE", f"/v1/webhook-endpoints/{v['endpoint']}",
                              f"/v1/webhook-endpoints/{UNKNOWN}", a.headers, None)


async def webhook_secret_rotate(http, a, v, pool):
    await same_404_as_unknown(http, "POST", f"/v1/webhook-endpoints/{v['endpoint']}/rotate-secret",
                              f"/v1/webhook-endpoints/{UNKNOWN}/rotate-secret", a.headers, None)


ATTACKS: dict[tuple[str, str], Attack] = {
    ("POST", "/v1/webhook-endpoints"): webhook_endpoint_post,
    ("GET", "/v1/webhook-endpoints"): webhook_endpoint_list,
    ("GET", "/v1/webhook-endpoints/{id}"): webhook_endpoint_get,
    ("PATCH", "/v1/webhook-endpoints/{id}"): webhook_endpoint_patch,
    ("DELETE", "/v1/webhook-endpoints/{id}"): webhook_endpoint_delete,
    ("POST", "/v1/webhook-endpoints/{id}/rotate-secret"): webhook_secret_rotate,
    ("PATCH", "/v1/leads/{id}"): lead_patch,
    ("DELETE", "/v1/leads/{id}"): lead_delete,
    ("POST", "/v1/erasure"): erasure_post,
    ("GET", "/v1/erasure/{id}"): erasure_get,
    ("GET", "/v1/events"): feed_get,
    ("POST", "/v1/stream-tokens"): stream_token_and_stream,
    ("GET", "/v1/events/stream"): stream_token_and_stream,
    ("GET", "/v1/leads/{id}"): lead_get,
    ("POST", "/v1/leads"): lead_post,
    ("GET", "/v1/leads/sendable"): picker,
    ("POST", "/v1/conversations"): conversation_open_for_lead,
    ("GET", "/v1/conversations"): conversation_list,
    ("GET", "/v1/conversations/{id}"): conversation_get,
    ("GET", "/v1/conversations/{id}/messages"): thread_get,
    ("POST", "/v1/conversations/{id}/messages"): thread_send,
    ("POST", "/v1/conversations/{id}/review"): review,
    ("GET", "/v1/messages/{id}"): message_get,
    ("POST", "/v1/opt-outs"): opt_out_post,
    ("GET", "/v1/opt-outs"): opt_out_list,
    ("DELETE", "/v1/opt-outs/{phone}"): opt_out_delete,
    ("GET", "/v1/consent/{phone}"): consent_get,
    ("DELETE", "/v1/messages/{id}"): message_cancel,
}


def test_the_tenancy_attacks_cover_every_v1_route_of_the_app():
    settings = Settings(database_url="postgresql://unused/unused", redis_url="redis://unused:1/0",
                        public_base_url="http://127.0.0.1:1", twilio_account_sid="AC", twilio_auth_token="t")
    app = create_app(settings, broker=StubBroker())
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None and r.resource.canonical.startswith("/v1/")}
    assert served == set(ATTACKS)


@pytest.mark.parametrize("route", list(ATTACKS), ids=[f"{m} {p}" for m, p in ATTACKS])
async def test_another_firms_key_gets_404_and_changes_nothing(http, make_firm, pool, victim, route):
    a = await make_firm("Firm A", "+16465550300")
    before = await snapshot(pool, victim["firm"].id)
    await ATTACKS[route](http, a, victim, pool)
    assert await snapshot(pool, victim["firm"].id) == before


async def test_the_same_phone_at_two_firms_is_two_separate_conversations(http, make_firm, pool, victim):
    a = await make_firm("Firm A", "+16465550300")
    lead = await add_lead(pool, a.id, PHONE, name="Anna Own")
    async with http.post("/v1/conversations", json={"lead_id": lead}, headers=a.headers) as resp:
        assert resp.status == 201
        conv = await resp.json()
    assert conv["conversation_id"] != victim["conv"]
    assert conv["last_message"] is None and conv["name"] == "Anna Own"
    assert conv["can_send"] is True, "B's paused review must not pause A's sends to the same phone"
    async with http.get(f"/v1/conversations/{conv['conversation_id']}/messages", headers=a.headers) as resp:
        assert (await resp.json())["items"] == []
