"""The send pipeline's HTTP surface, as the portal sees it (no worker needed)."""

import aiohttp
import pytest

from conversations.sendable import NOTICES
from tests.send_pipeline.conftest import add_lead, open_conversation, post_send

PHONE = "+12125551234"


async def test_opening_a_conversation_creates_it_once(http, firm, pool):
    lead_id = await add_lead(pool, firm.id, PHONE, name="Dana Ruiz")
    async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=firm.headers) as resp:
        assert resp.status == 201
        first = await resp.json()
    async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=firm.headers) as resp:
        assert resp.status == 200
        again = await resp.json()
    assert first["conversation_id"] == again["conversation_id"]
    assert first == {"conversation_id": first["conversation_id"], "lead_id": lead_id, "phone": PHONE,
                     "name": "Dana Ruiz", "can_send": True, "notice": None, "line_type": None,
                     "last_message_at": None, "last_message": None, "needs_reply": False}


async def test_a_second_signup_with_the_same_phone_shares_the_conversation(http, firm, pool):
    first = await open_conversation(http, firm, await add_lead(pool, firm.id, PHONE))
    second = await open_conversation(http, firm, await add_lead(pool, firm.id, PHONE))
    assert first == second


@pytest.mark.parametrize("status, phone, code", [
    ("missing", None, "no_phone"),
    ("pending", PHONE, "pending"),
    ("invalid", "555", "invalid_phone"),
])
async def test_a_lead_without_a_valid_phone_gets_409_with_its_notice(http, firm, pool, status, phone, code):
    lead_id = await add_lead(pool, firm.id, phone, status=status)
    async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=firm.headers) as resp:
        assert resp.status == 409
        body = await resp.json()
    assert body["code"] == code
    assert body["error"] == NOTICES[code].text
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 0


async def test_a_lead_whose_number_lookup_found_invalid_gets_409(http, firm, pool):
    lead_id = await add_lead(pool, firm.id, PHONE)
    await pool.execute("INSERT INTO phone_lines (phone_e164, valid) VALUES ($1, false)", PHONE)
    async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=firm.headers) as resp:
        assert resp.status == 409
        assert (await resp.json())["code"] == "invalid_phone"


async def test_a_landline_lead_gets_its_conversation_with_a_notice(http, firm, pool):
    lead_id = await add_lead(pool, firm.id, PHONE)
    await pool.execute("INSERT INTO phone_lines (phone_e164, valid, line_type) VALUES ($1, true, 'landline')", PHONE)
    async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=firm.headers) as resp:
        assert resp.status == 201
        body = await resp.json()
    assert body["can_send"] is False
    assert body["notice"] == NOTICES["landline"].as_json()


async def test_another_firms_lead_conversation_and_message_are_404(http, firm, make_firm, pool):
    other = await make_firm()
    theirs = await add_lead(pool, other.id, PHONE)
    async with http.post("/v1/conversations", json={"lead_id": theirs}, headers=firm.headers) as resp:
        assert resp.status == 404
    conv = await open_conversation(http, other, theirs)
    status, sent, _ = await post_send(http, other.user("u1"), conv, "Hello")
    assert status == 202
    for method, path in (("GET", f"/v1/conversations/{conv}/messages"), ("GET", f"/v1/messages/{sent['id']}")):
        async with http.request(method, path, headers=firm.headers) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == "not_found"
    status, body, _ = await post_send(http, firm.user("u1"), conv, "Hello")
    assert (status, body["code"]) == (404, "not_found")


@pytest.mark.parametrize("payload", [{}, {"lead_id": "12"}, {"lead_id": True}, {"lead_id": 1.5}])
async def test_a_conversation_request_without_an_integer_lead_id_is_400(http, firm, payload):
    async with http.post("/v1/conversations", json=payload, headers=firm.headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == "invalid_lead_id"


async def test_an_accepted_send_answers_202_with_the_queued_message(http, firm, pool):
    conv = await open_conversation(http, firm, await add_lead(pool, firm.id, PHONE))
    status, body, _ = await post_send(http, firm.user("u1"), conv, "  Hi Dana, see you Tuesday!  ")
    assert status == 202
    assert body["status"] == "queued"
    assert body["body"] == "Hi Dana, see you Tuesday!"
    assert (body["conversation_id"], body["direction"], body["sent_by"]) == (conv, "out", "u1")
    assert body["segments"] == 1 and body["deduplicated"] is False
    async with http.get(f"/v1/messages/{body['id']}", headers=firm.headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["id"] == body["id"]
    assert await pool.fetchval("SELECT last_message_at IS NOT NULL FROM conversations WHERE id = $1", conv)


async def test_a_long_unicode_body_counts_its_segments(http, firm, pool):
    conv = await open_conversation(http, firm, await add_lead(pool, firm.id, PHONE))
    status, body, _ = await post_send(http, firm.user("u1"), conv, "😀" * 40)
    assert (status, body["segments"]) == (202, 2)


async def test_a_send_without_a_user_or_with_a_bad_body_is_400_and_stores_nothing(http, firm, pool):
    conv = await open_conversation(http, firm, await add_lead(pool, firm.id, PHONE))
    url = f"/v1/conversations/{conv}/messages"
    async with http.post(url, json={"body": "Hi"}, headers=firm.headers) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, "missing_user")
    headers = {**firm.user("u1"), "Content-Type": "application/json"}
    for raw, code in ((b"{not json", "invalid_json"), (b'{"body": "caf\xe9"}', "invalid_utf8"),
                      (b'["Hi"]', "invalid_json"), (b'{"body": ""}', "empty_body")):
        async with http.post(url, data=raw, headers=headers) as resp:
            assert resp.status == 400, raw
            assert (await resp.json())["code"] == code
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_the_thread_lists_oldest_first_in_pages(http, firm, pool):
    conv = await open_conversation(http, firm, await add_lead(pool, firm.id, PHONE))
    ids = []
    for n in range(5):
        status, body, _ = await post_send(http, firm.user("u1"), conv, f"Message {n}")
        assert status == 202
        ids.append(body["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"after": cursor} if cursor else {})}
        async with http.get(f"/v1/conversations/{conv}/messages", params=params, headers=firm.headers) as resp:
            assert resp.status == 200
            page = await resp.json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids
    async with http.get(f"/v1/conversations/{conv}/messages", params={"limit": "0"}, headers=firm.headers) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, "invalid_limit")
    async with http.get(f"/v1/conversations/{conv}/messages", params={"after": "x"}, headers=firm.headers) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, "invalid_cursor")


async def test_sends_answer_503_and_store_nothing_when_redis_is_down(settings, deps, broker, firm, pool, http):
    from aiohttp import web as aioweb

    from shared.app import create_app
    from shared.deps import Deps, redis_client
    from tests.support import free_port

    conv = await open_conversation(http, firm, await add_lead(pool, firm.id, PHONE))
    dead = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings, deps=Deps(settings, deps.pool, dead, deps.twilio), broker=broker)
    runner = aioweb.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await aioweb.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as s:
            status, body, headers = await post_send(s, firm.user("u1"), conv, "Hello")
    finally:
        await runner.cleanup()
        await dead.aclose()
    assert status == 503
    assert body["code"] == "redis_unavailable"
    assert "Nothing was sent" in body["error"]
    assert headers["Retry-After"]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
