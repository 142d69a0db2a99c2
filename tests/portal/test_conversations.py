"""The conversation list (GET /v1/conversations) and thread open (GET /v1/conversations/{id})."""

from __future__ import annotations

import aiohttp
from conversations.sendable import NOTICES
from tests.portal.support import add_conversation, add_lead, add_message, get_json, set_flag, set_line
from tests.webhooks.support import settle

LIST = "/v1/conversations"


async def conversations(http, firm, **params):
    return await get_json(http, LIST, firm.headers, **params)


async def lookups(sim: str) -> list:
    async with aiohttp.ClientSession() as s, s.get(f"{sim}/sim/lookups") as resp:
        return (await resp.json())["lookups"]


async def test_list_is_most_recent_activity_first_and_pages_with_a_cursor(http, pool, firm):
    ids = []
    for n in range(5):
        phone = f"+1646555{2000 + n}"
        await add_lead(pool, firm.id, f"Lead {n}", phone)
        ids.append(await add_conversation(pool, firm.id, phone))
        await add_message(pool, firm.id, ids[-1], f"hello {n}")
    await add_message(pool, firm.id, ids[1], "hello again one")  # activity now: 1 moves to the top
    # opened but never written to: not in the list (a conversation joins it with its first message)
    await add_lead(pool, firm.id, "Lead quiet", "+16465552099")
    await add_conversation(pool, firm.id, "+16465552099")

    expected = [ids[1], ids[4], ids[3], ids[2], ids[0]]
    assert [c["conversation_id"] for c in (await conversations(http, firm))["items"]] == expected

    seen, cursor, pages = [], None, 0
    while True:
        page = await conversations(http, firm, limit="2", **({"before": cursor} if cursor else {}))
        pages += 1
        seen += [c["conversation_id"] for c in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == expected and pages == 3


async def test_each_item_has_the_last_message_preview_status_and_decision(http, pool, firm):
    lead = await add_lead(pool, firm.id, "Pat Preview", "+16465552101")
    conv = await add_conversation(pool, firm.id, "+16465552101")
    await add_message(pool, firm.id, conv, "first")
    long_body = "Hello Pat, " + "this is a long message about the seminar. " * 10
    msg = await add_message(pool, firm.id, conv, long_body, status="delivered")

    [item] = (await conversations(http, firm))["items"]
    assert item["conversation_id"] == conv and item["lead_id"] == lead
    assert item["phone"] == "+16465552101" and item["name"] == "Pat Preview"
    assert item["can_send"] is True and item["notice"] is None and item["last_message_at"]
    last = item["last_message"]
    assert last["id"] == msg and last["status"] == "delivered" and last["direction"] == "out"
    assert last["truncated"] is True and last["body"].endswith("…")
    assert len(last["body"]) <= 101 and long_body.startswith(last["body"][:-1])


async def test_an_opted_out_conversation_cannot_send_and_says_why(http, pool, firm):
    await add_lead(pool, firm.id, "Olive Out", "+16465552102")
    conv = await add_conversation(pool, firm.id, "+16465552102")
    await add_message(pool, firm.id, conv, "STOP", direction="in")
    await set_flag(pool, firm.id, "+16465552102", "opted_out")
    [item] = (await conversations(http, firm))["items"]
    assert item["can_send"] is False and item["notice"] == NOTICES["opted_out"].as_json()
    opened = await get_json(http, f"{LIST}/{conv}", firm.headers)
    assert opened["can_send"] is False and opened["notice"]["text"] == NOTICES["opted_out"].text


async def test_a_conversation_with_an_unknown_sender_is_sendable(http, pool, firm):
    conv = await add_conversation(pool, firm.id, "+16465552103")
    await set_line(pool, "+16465552103", "mobile")
    await add_message(pool, firm.id, conv, "who is this?", direction="in")
    [item] = (await conversations(http, firm))["items"]
    assert item["lead_id"] is None and item["name"] is None and item["can_send"] is True
    assert item["last_message"]["status"] == "received" and item["last_message"]["body"] == "who is this?"


async def test_bad_limit_or_cursor_is_400(http, firm):
    for limit in ("0", "101", "x", "-1", "1.5", "99999999999999999999"):
        body = await get_json(http, LIST, firm.headers, 400, limit=limit)
        assert body["code"] == "bad_limit"
    for cursor in ("nope", "MTIz", "!!!", "x" * 500, "LTEuLTE"):
        body = await get_json(http, LIST, firm.headers, 400, before=cursor)
        assert body["code"] == "bad_cursor"


async def test_an_inbound_reply_puts_its_conversation_first(http, pool, firm):
    convs = []
    for n in range(3):
        phone = f"+1646555{2200 + n}"
        await add_lead(pool, firm.id, f"Reply {n}", phone)
        conv = await add_conversation(pool, firm.id, phone)
        await add_message(pool, firm.id, conv, f"hello {n}")
        convs.append(conv)
    assert (await conversations(http, firm))["items"][0]["conversation_id"] == convs[2]
    await add_message(pool, firm.id, convs[0], "yes, I'll come", direction="in")
    first = (await conversations(http, firm))["items"][0]
    assert first["conversation_id"] == convs[0]
    assert first["last_message"]["direction"] == "in" and first["last_message"]["body"] == "yes, I'll come"


async def test_an_inbound_text_through_the_webhook_puts_its_conversation_first(http, pool, firm, sim, deps):
    convs = []
    for n in range(3):
        phone = f"+1646555{2250 + n}"
        await add_lead(pool, firm.id, f"Texter {n}", phone)
        convs.append(await add_conversation(pool, firm.id, phone))
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim}/sim/inbound", json={"from": "+16465552250", "to": firm.number,
                                                      "body": "Is parking free?"}) as resp:
            assert (await resp.json())["answer_status"] == 200
    # apply the stored inbox row as the inbound worker would (a session worker left running
    # by another test file may have applied it already: whoever applies it first wins)
    assert await settle(deps) == ["filed"]
    first = (await conversations(http, firm))["items"][0]
    assert first["conversation_id"] == convs[0] and first["name"] == "Texter 0"
    assert first["last_message"]["body"] == "Is parking free?" and first["last_message"]["status"] == "received"


async def test_a_send_puts_its_conversation_first(http, pool, firm):
    convs = []
    for n in range(3):
        phone = f"+1646555{2300 + n}"
        await add_lead(pool, firm.id, f"Send {n}", phone)
        convs.append(await add_conversation(pool, firm.id, phone))
    async with http.post(f"{LIST}/{convs[0]}/messages", json={"body": "See you Tuesday!"},
                         headers=firm.user("u1")) as resp:
        assert resp.status == 202, await resp.text()
    first = (await conversations(http, firm))["items"][0]
    assert first["conversation_id"] == convs[0]
    assert first["last_message"]["body"] == "See you Tuesday!" and first["last_message"]["direction"] == "out"


async def test_thread_open_of_an_imported_landline_looks_it_up_once(http, pool, firm, sim):
    phone = "+16465550042"  # the simulator's landline range (0001-0099)
    await add_lead(pool, firm.id, "Lana Landline", phone)  # imported: valid, never looked up
    conv = await add_conversation(pool, firm.id, phone)

    opened = await get_json(http, f"{LIST}/{conv}", firm.headers)
    assert opened["can_send"] is False
    assert opened["notice"] == {"level": "warning", "code": "landline",
                                "text": "This number is a landline and can't receive SMS messages"}
    assert opened["line_type"] == "landline"
    assert len(await lookups(sim)) == 1

    again = await get_json(http, f"{LIST}/{conv}", firm.headers)
    assert again == opened
    assert len(await lookups(sim)) == 1
    await add_message(pool, firm.id, conv, "Call me instead", direction="in")
    [item] = (await conversations(http, firm))["items"]
    assert item["notice"]["code"] == "landline"


async def test_thread_open_of_a_known_line_calls_nothing(http, pool, firm, sim):
    await add_lead(pool, firm.id, "Mo Mobile", "+16465552401")
    await set_line(pool, "+16465552401", "mobile")
    conv = await add_conversation(pool, firm.id, "+16465552401")
    opened = await get_json(http, f"{LIST}/{conv}", firm.headers)
    assert opened["can_send"] is True and opened["line_type"] == "mobile"
    assert await lookups(sim) == []


async def sim_counter(sim: str, name: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{sim}/sim/counters") as resp:
        return (await resp.json())[name]


async def test_a_failing_lookup_is_not_asked_again_by_the_next_thread_open(http, pool, firm, sim):
    await add_lead(pool, firm.id, "Fay Failing", "+16465552402")  # imported: never looked up
    conv = await add_conversation(pool, firm.id, "+16465552402")
    async with aiohttp.ClientSession() as s, s.post(f"{sim}/sim/config", json={"lookup_500_rate": 1.0}) as resp:
        assert resp.status == 200
    try:
        opened = await get_json(http, f"{LIST}/{conv}", firm.headers)
        assert opened["can_send"] is True and opened["line_type"] is None  # unknown: sendable
        assert await sim_counter(sim, "lookup_requests") == 1
        again = await get_json(http, f"{LIST}/{conv}", firm.headers)
        assert again == opened
        assert await sim_counter(sim, "lookup_requests") == 1  # the failure is remembered
    finally:
        async with aiohttp.ClientSession() as s, s.post(f"{sim}/sim/config", json={"lookup_500_rate": 0}) as resp:
            assert resp.status == 200


async def test_thread_open_of_another_firms_or_no_conversation_is_404(http, pool, firm, make_firm):
    other = await make_firm()
    await add_lead(pool, firm.id, "Mine", "+16465552402")
    conv = await add_conversation(pool, firm.id, "+16465552402")
    assert (await get_json(http, f"{LIST}/{conv}", other.headers, 404))["code"] == "not_found"
    await get_json(http, f"{LIST}/{conv + 1000}", firm.headers, 404)
    await get_json(http, f"{LIST}/99999999999999999999999", firm.headers, 404)
    assert (await conversations(http, other))["items"] == []


async def test_the_list_searches_by_name_or_phone_digits_and_pages_through_the_matches(http, pool, firm):
    ids = {}
    for n, name in enumerate(["Maria Garcia", "Mario Rossi", "Priya Shah", "Omar Marin", "100%_Real"]):
        phone = f"+1646555{2400 + n}"
        await add_lead(pool, firm.id, name, phone)
        ids[name] = await add_conversation(pool, firm.id, phone)
        await add_message(pool, firm.id, ids[name], f"hello {n}")

    async def found(q, **params):
        return [c["name"] for c in (await conversations(http, firm, q=q, **params))["items"]]

    assert await found("mar") == ["Omar Marin", "Mario Rossi", "Maria Garcia"]  # newest first
    assert await found("  MARIA ") == ["Maria Garcia"]
    assert await found("(646) 555-2402") == ["Priya Shah"]  # digits typed in any format
    assert await found("+1 646 555 240") == ["100%_Real", "Omar Marin", "Priya Shah", "Mario Rossi", "Maria Garcia"]
    assert await found("0%_") == ["100%_Real"] and await found("o%r") == []  # % and _ match literally
    assert len(await found("m")) == 5  # under 2 characters: no filter

    first = await conversations(http, firm, q="mar", limit="2")
    assert [c["name"] for c in first["items"]] == ["Omar Marin", "Mario Rossi"] and first["next"]
    assert await found("mar", limit="2", before=first["next"]) == ["Maria Garcia"]
    assert (await get_json(http, LIST, firm.headers, 400, q="x" * 201))["code"] == "q_too_long"
