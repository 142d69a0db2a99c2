"""Hostile input gets a clear 4xx `{"error", "code"}`: never a 500, never half-written state.

Each test sends what a careless or malicious client could send (oversized, mistyped,
malformed, injected) to the real app on a real port and checks the answer and the tables.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from tests.security.support import add_conversation, add_lead, error_of

BIG = 64 * 1024 + 1

JSON_ROUTES = [
    ("POST", "/v1/leads"),
    ("POST", "/v1/conversations"),
    ("POST", "/v1/conversations/1/messages"),
    ("POST", "/v1/conversations/1/review"),
]


async def count_rows(pool) -> dict[str, int]:
    out = {}
    for table in ("leads", "conversations", "messages", "twilio_inbox", "consent_events"):
        out[table] = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return out


async def test_an_oversized_json_body_is_refused_413_and_stores_nothing(http, firm, pool):
    before = await count_rows(pool)
    body = b'{"external_id": "x", "name": "' + b"a" * BIG + b'"}'
    for method, path in JSON_ROUTES:
        async with http.request(method, path, data=body, headers={**firm.user(), "Content-Type": "application/json"}) as resp:
            assert resp.status == 413, path
            assert (await error_of(resp))["code"] == "body_too_large"
    assert await count_rows(pool) == before


async def test_an_oversized_chunked_body_without_a_length_is_refused_413(http, firm):
    async def chunks():
        yield b'{"external_id": "x", "name": "'
        for _ in range(20):
            yield b"a" * 8192
        yield b'"}'

    async with http.post("/v1/leads", data=chunks(), headers={**firm.headers, "Content-Type": "application/json"}) as resp:
        assert resp.status == 413
        await error_of(resp)


async def test_the_body_limit_is_enforced_from_the_declared_length_before_any_body_is_read(web, firm):
    """A client that announces 50 MB and sends nothing is answered at once: the server
    never waits for (or buffers) a body it would refuse."""
    url = urlsplit(web)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(
            (f"POST /v1/leads HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {firm['api_key']}\r\n"
             "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n").encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    assert status_line.split()[1] == b"413", status_line


NOT_JSON = [
    ("text/plain", b'{"external_id": "a"}'),
    ("application/x-www-form-urlencoded", b"external_id=a"),
    ("application/xml", b"<lead><external_id>a</external_id></lead>"),
    ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--"),
]


async def test_a_v1_body_that_is_not_json_is_refused_415(http, firm, pool):
    for ctype, data in NOT_JSON:
        async with http.post("/v1/leads", data=data, headers={**firm.headers, "Content-Type": ctype}) as resp:
            assert resp.status == 415, ctype
            assert (await error_of(resp))["code"] == "unsupported_media_type"
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_a_twilio_webhook_that_is_not_a_form_is_refused(http):
    for path in ("/twilio/status?m=1", "/twilio/inbound"):
        async with http.post(path, json={"MessageSid": "SM1"}, headers={"X-Twilio-Signature": "x"}) as resp:
            assert resp.status == 415
            await error_of(resp)


NOT_UTF8_JSON_OBJECTS = [
    (b'{"external_id": "\xff\xfe"}', "invalid_utf8"),
    (b'{"external_id": "caf\xc3"}', "invalid_utf8"),
    (b"\xef\xbb\xbf\xff", "invalid_utf8"),
    (b'{"external_id": ', "invalid_json"),
    (b"[1, 2, 3]", "invalid_json"),
    (b"null", "invalid_json"),
    (b"", "invalid_json"),
    (b'{"external_id": NaN}', None),
]


async def test_a_body_that_is_not_valid_utf8_json_object_is_refused_400(http, firm, pool):
    for raw, code in NOT_UTF8_JSON_OBJECTS:
        async with http.post("/v1/leads", data=raw, headers={**firm.headers, "Content-Type": "application/json"}) as resp:
            body = await error_of(resp)
            assert resp.status == 400, raw
            if code:
                assert body["code"] == code, raw
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_deeply_nested_json_is_refused_400(http, firm):
    raw = b"[" * 30000 + b"]" * 30000
    async with http.post("/v1/leads", data=raw, headers={**firm.headers, "Content-Type": "application/json"}) as resp:
        await error_of(resp)


async def test_a_number_too_long_to_convert_is_refused_400(http, firm):
    raw = b'{"lead_id": ' + b"7" * 5000 + b"}"
    async with http.post("/v1/conversations", data=raw, headers={**firm.headers, "Content-Type": "application/json"}) as resp:
        await error_of(resp)


MALFORMED_LEADS = [
    {"external_id": "a\ud800b"},
    {"external_id": "nul\x00byte"},
    {"external_id": "x" * 201},
    {"external_id": 12},
    {"external_id": ["a"]},
    {"external_id": ""},
    {"external_id": "ok", "signed_up_at": "yesterday"},
    {"external_id": "ok", "signed_up_at": "2024-05-01T18:30:00"},
    {"external_id": "ok", "signed_up_at": "9999-12-31T23:59:59-14:00"},
    {"external_id": "ok", "phone": {"$gt": ""}},
    {"external_id": "ok", "name": "n" * 201},
]


async def test_a_malformed_lead_is_refused_400_and_not_stored(http, firm, pool):
    for payload in MALFORMED_LEADS:
        async with http.post("/v1/leads", json=payload, headers=firm.headers) as resp:
            assert resp.status == 400, payload
            await error_of(resp)
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


BAD_LEAD_IDS = [
    {}, {"lead_id": "1"}, {"lead_id": 1.5}, {"lead_id": True}, {"lead_id": None}, {"lead_id": [1]},
    {"lead_id": 2**63}, {"lead_id": -1}, {"lead_id": 0}, {"lead_id": 10**30},
]


async def test_a_bad_lead_id_opens_no_conversation(http, firm, pool):
    for payload in BAD_LEAD_IDS:
        async with http.post("/v1/conversations", json=payload, headers=firm.headers) as resp:
            assert resp.status in (400, 404), payload
            await error_of(resp)
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 0


BAD_SEND_BODIES = [
    {}, {"body": ""}, {"body": "   "}, {"body": 5}, {"body": None}, {"body": "x" * 1601},
    {"body": "nul \x00"}, {"body": "lone \ud83d surrogate"}, {"body": ["hi"]},
]


async def test_a_bad_send_body_is_refused_400_and_sends_nothing(http, firm, pool):
    lead = await add_lead(pool, firm.id, "+12125550142")
    conv = await add_conversation(pool, firm.id, lead, "+12125550142")
    for payload in BAD_SEND_BODIES:
        async with http.post(f"/v1/conversations/{conv}/messages", json=payload, headers=firm.user()) as resp:
            assert resp.status == 400, payload
            await error_of(resp)
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_a_send_without_a_usable_user_id_is_refused_400(http, firm, pool):
    lead = await add_lead(pool, firm.id, "+12125550143")
    conv = await add_conversation(pool, firm.id, lead, "+12125550143")
    for headers in ({}, {"X-User-Id": "   "}, {"X-User-Id": "u" * 201}):
        async with http.post(f"/v1/conversations/{conv}/messages", json={"body": "hi"},
                             headers={**firm.headers, **headers}) as resp:
            assert resp.status == 400, headers
            await error_of(resp)
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


SQL_METACHARACTERS = [
    "' OR '1'='1", "'; DROP TABLE leads; --", "\" OR 1=1 --", "%", "%%", "_", "__", "\\", "\\%",
    "a%b_c", "'||(SELECT pg_sleep(5))||'", "1); DELETE FROM firms; --", "$1", "$$", "E'\\x41'",
    "dana' --", "(?i).*", "[a-z]*", "*", "'", "''",
]


async def test_sql_metacharacters_in_a_search_match_only_literally(http, firm, make_firm, pool):
    other = await make_firm("Other", "+16465559999")
    await add_lead(pool, firm.id, "+12125550150", name="Dana Lead")
    await add_lead(pool, other.id, "+12125550151", name="Secret Person")
    for q in SQL_METACHARACTERS:
        async with http.get("/v1/leads/sendable", params={"q": q}, headers=firm.headers) as resp:
            if resp.status == 200:
                items = (await resp.json())["items"]
                assert all(q.strip().lower() in (i["name"] + " " + i["email"]).lower() for i in items), (q, items)
            else:
                await error_of(resp)
    assert await pool.fetchval("SELECT count(*) FROM leads") == 2
    assert await pool.fetchval("SELECT count(*) FROM firms") == 2


async def test_a_10000_character_search_is_refused_400(http, firm):
    """Past 8190 bytes of request line aiohttp's HTTP parser refuses it (a plain-text 400,
    before any handler); below that the picker refuses q over 200 characters in JSON."""
    for q in ["a" * 10_000, "5" * 10_000, "%_" * 5_000, "' OR 1=1 -- " * 900, "é" * 10_000]:
        async with http.get("/v1/leads/sendable", params={"q": q}, headers=firm.headers) as resp:
            assert resp.status == 400, q[:20]
            if resp.content_type == "application/json":
                await error_of(resp)
        async with http.get("/v1/leads/sendable", params={"q": q[:1000]}, headers=firm.headers) as resp:
            assert resp.status == 400, q[:20]
            assert (await error_of(resp))["code"] == "q_too_long"


async def test_a_search_that_is_not_valid_utf8_is_not_a_server_error(http, firm):
    for q in ["%FF%FE", "%C3", "%00ab", "%ED%A0%80ab"]:
        async with http.get(f"/v1/leads/sendable?q={q}", headers=firm.headers) as resp:
            if resp.status != 200:
                await error_of(resp)


ODD_PATHS = [
    "/v1/leads/99999999999999999999",
    "/v1/leads/9223372036854775808",
    "/v1/leads/0",
    "/v1/leads/-1",
    "/v1/leads/1e3",
    "/v1/leads/%31",
    "/v1/messages/00000000000000000000000000000001",
    "/v1/conversations/18446744073709551616/messages",
    "/v1/conversations/%F0%9F%98%80",
    "/v1/conversations/1%00",
]


async def test_odd_ids_in_paths_are_answered_4xx(http, firm):
    for path in ODD_PATHS:
        async with http.get(path, headers=firm.headers) as resp:
            await error_of(resp)


async def test_an_id_too_long_to_convert_is_answered_404(http, firm):
    async with http.get("/v1/leads/" + "9" * 5000, headers=firm.headers) as resp:
        await error_of(resp)


async def test_bad_paging_of_the_conversation_list_is_answered_400(http, firm):
    for query in ["limit=0", "limit=-1", "limit=abc", "limit=1e2", "limit=99999999999999999999",
                  "before=%00", "before=" + "A" * 5000, "before=not-a-cursor", "limit=%C2%B2"]:
        async with http.get(f"/v1/conversations?{query}", headers=firm.headers) as resp:
            assert resp.status == 400, query[:40]
            await error_of(resp)


async def test_bad_paging_of_a_thread_is_answered_400(http, firm, pool):
    lead = await add_lead(pool, firm.id, "+12125550160")
    conv = await add_conversation(pool, firm.id, lead, "+12125550160")
    for query in ["limit=0", "limit=abc", "limit=201", "after=x", "after=-1", "after=1e3", "after=99999999999999999999"]:
        async with http.get(f"/v1/conversations/{conv}/messages?{query}", headers=firm.headers) as resp:
            assert resp.status == 400, query
            await error_of(resp)


@pytest.mark.parametrize("query", ["limit=%C2%B2", "after=%C2%B2"])
async def test_a_superscript_digit_in_thread_paging_is_answered_400(http, firm, pool, query):
    lead = await add_lead(pool, firm.id, "+12125550161")
    conv = await add_conversation(pool, firm.id, lead, "+12125550161")
    async with http.get(f"/v1/conversations/{conv}/messages?{query}", headers=firm.headers) as resp:
        await error_of(resp)


WRONG_AUTH = [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer lsk_" + "A" * 43, "Bearer ' OR '1'='1",
    "Bearer " + "x" * 8000, "bearer\tnot-a-key", "Token abc",
]


async def test_a_missing_or_wrong_api_key_is_answered_401_everywhere(http):
    for auth in WRONG_AUTH:
        headers = {} if auth is None else {"Authorization": auth}
        for method, path in [("GET", "/v1/leads/1"), ("POST", "/v1/leads"), ("GET", "/v1/conversations"),
                             ("GET", "/v1/leads/sendable?q=da")]:
            async with http.request(method, path, headers=headers, json={"external_id": "a"}) as resp:
                assert resp.status == 401, (auth and auth[:30], method, path, resp.status)
                assert (await error_of(resp))["code"] == "unauthorized"


async def test_an_unknown_route_or_method_is_a_json_4xx(http, firm):
    for method, path in [("GET", "/v1/nothing-here"), ("DELETE", "/v1/leads/1"), ("PUT", "/v1/conversations"),
                         ("GET", "/twilio/status"), ("GET", "/twilio/inbound")]:
        async with http.request(method, path, headers=firm.headers) as resp:
            await error_of(resp)


async def test_an_unsigned_status_callback_with_a_superscript_message_id_is_refused_403(http):
    async with http.post("/twilio/status?m=%C2%B2", data={"MessageSid": "SM1", "MessageStatus": "sent"}) as resp:
        assert resp.status == 403
