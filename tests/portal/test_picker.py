"""The lead picker, GET /v1/leads/sendable: only sendable phones, each once as its newest signup."""

from __future__ import annotations

import pytest

from devtools.bench.generate_leads import generate_leads
from portal.picker import BadQuery, country_code, digits_only, escape_like, normalize_query
from tests.portal.support import add_lead, days_ago, get_json, set_flag, set_line

PICKER = "/v1/leads/sendable"


async def pick(http, firm, q: str, status: int = 200):
    body = await get_json(http, PICKER, firm.headers, status, q=q)
    return body if status != 200 else body["items"]


# ---- pure helpers ---------------------------------------------------------------------------

def test_query_under_two_characters_is_not_searched():
    assert normalize_query(None) is None
    assert normalize_query("a") is None
    assert normalize_query("  b  ") is None


def test_digits_typed_in_any_format_search_the_phone():
    for typed in ("(212) 555", "212-555-01", "+1212555", "212 555 0142"):
        query = normalize_query(typed)
        assert query.mode == "digits" and query.needle == digits_only(typed)


def test_a_query_with_letters_or_few_digits_searches_names_and_emails():
    assert normalize_query("ann").mode == "text"
    assert normalize_query("jo 212").mode == "text"
    assert normalize_query("12").mode == "text"


def test_short_fragments_are_marked_for_the_bounded_scan():
    assert normalize_query("an").indexed is False
    assert normalize_query("a.b").indexed is False
    assert normalize_query("ann").indexed is True


def test_like_metacharacters_are_escaped():
    assert escape_like(r"50%_a\b") == r"50\%\_a\\b"


def test_too_long_or_nul_queries_are_refused():
    with pytest.raises(BadQuery):
        normalize_query("x" * 201)
    with pytest.raises(BadQuery):
        normalize_query("ab\x00c")
    assert normalize_query("x" * 200) is not None


def test_the_country_code_comes_from_the_firm_region():
    assert country_code("US") == "1" and country_code("gb") == "44" and country_code("ZZ") == ""


# ---- through HTTP ---------------------------------------------------------------------------

async def test_picker_offers_only_sendable_leads(http, pool, firm, make_firm):
    other = await make_firm()
    sendable = {
        "Zed Mobile": "+13125550111", "Zed Unknown": "+13125550112", "Zed Voip": "+13125550113",
        "Zed Elsewhere": "+13125550114",  # opted out of another firm only
    }
    for name, phone in sendable.items():
        await add_lead(pool, firm.id, name, phone)
    await set_line(pool, "+13125550111", "mobile")
    await set_line(pool, "+13125550113", "nonFixedVoip")
    await set_flag(pool, other.id, "+13125550114", "opted_out")

    await add_lead(pool, firm.id, "Zed Nophone", None, status="missing")
    await add_lead(pool, firm.id, "Zed Pending", "+13125550121", status="pending")
    await add_lead(pool, firm.id, "Zed Invalid", "+13125550122", status="invalid")
    await add_lead(pool, firm.id, "Zed Lookupinvalid", "+13125550123")
    await set_line(pool, "+13125550123", None, valid=False)
    await add_lead(pool, firm.id, "Zed Landline", "+13125550124")
    await set_line(pool, "+13125550124", "landline")
    for name, phone, flag in (("Zed Optedout", "+13125550125", "opted_out"),
                              ("Zed Review", "+13125550126", "review_pending"),
                              ("Zed Blocked", "+13125550127", "blocked")):
        await add_lead(pool, firm.id, name, phone)
        await set_flag(pool, firm.id, phone, flag)

    items = await pick(http, firm, "zed")
    assert sorted(i["name"] for i in items) == sorted(sendable)
    # by phone too: the unsendable numbers never show, whatever matched
    assert sorted(i["name"] for i in await pick(http, firm, "312555012")) == []
    assert sorted(i["name"] for i in await pick(http, firm, "312555011")) == sorted(sendable)


async def test_three_signups_of_one_person_appear_once_as_the_newest(http, pool, firm):
    phone = "+14155550142"
    await add_lead(pool, firm.id, "Robert Quill", phone, email="bob@old.example", signed_up_at=days_ago(900))
    await add_lead(pool, firm.id, "Bob Quill", phone, email="bq@mid.example", signed_up_at=days_ago(300))
    newest = await add_lead(pool, firm.id, "Rob Quill", phone, email="rob@new.example", event="Medicare 101",
                            signed_up_at=days_ago(2))

    for q in ("quill", "ROBERT", "old.example", "(415) 555-0142", "bq@"):
        items = await pick(http, firm, q)
        assert [i["lead_id"] for i in items] == [newest], q
    item = items[0]
    assert item == {"lead_id": newest, "name": "Rob Quill", "email": "rob@new.example", "phone": phone,
                    "event": "Medicare 101", "signed_up_at": item["signed_up_at"]}
    assert item["signed_up_at"].startswith(days_ago(2).date().isoformat())


async def test_a_newest_signup_that_is_not_sendable_hides_the_phone(http, pool, firm):
    phone = "+14155550143"
    await add_lead(pool, firm.id, "Old Valid", phone, signed_up_at=days_ago(30))
    await add_lead(pool, firm.id, "New Pending", phone, status="pending", signed_up_at=days_ago(1))
    assert await pick(http, firm, "old valid") == []


async def test_one_character_gives_no_items(http, pool, firm):
    await add_lead(pool, firm.id, "Ann Lee", "+14155550144")
    assert await pick(http, firm, "a") == []
    assert await pick(http, firm, "  a ") == []
    assert (await get_json(http, PICKER, firm.headers))["items"] == []
    assert [i["name"] for i in await pick(http, firm, "an")] == ["Ann Lee"]


async def test_phone_digits_in_another_format_match(http, pool, firm):
    lead = await add_lead(pool, firm.id, "Dana Digits", "+12125550142")
    await add_lead(pool, firm.id, "Other Number", "+17185550199")
    for typed in ("(212) 555", "212-555-01", "+1212555", "2125550142", "1 (212) 555-0142", "555-0142", "0142"):
        assert [i["lead_id"] for i in await pick(http, firm, typed)] == [lead], typed


async def test_best_match_comes_first(http, pool, firm):
    await add_lead(pool, firm.id, "Joanne Park", "+16465550101", signed_up_at=days_ago(1))
    await add_lead(pool, firm.id, "Ann Lee", "+16465550102", signed_up_at=days_ago(50))
    await add_lead(pool, firm.id, "Lee Annabel", "+16465550103", signed_up_at=days_ago(20))
    await add_lead(pool, firm.id, "Bo Ray", "+16465550104", email="annual@x.example", signed_up_at=days_ago(90))
    names = [i["name"] for i in await pick(http, firm, "ann")]
    # prefixes (of name, of a word of the name, of the email) by newest signup, then substrings
    assert names == ["Lee Annabel", "Ann Lee", "Bo Ray", "Joanne Park"]

    national = await add_lead(pool, firm.id, "National Prefix", "+13125550177", signed_up_at=days_ago(40))
    inside = await add_lead(pool, firm.id, "Digits Inside", "+16463125550", signed_up_at=days_ago(1))
    assert [i["lead_id"] for i in await pick(http, firm, "312-5550")] == [national, inside]
    assert [i["lead_id"] for i in await pick(http, firm, "646 312 5550")] == [inside]


async def test_like_metacharacters_match_literally(http, pool, firm):
    await add_lead(pool, firm.id, "Sale 100% Club", "+16465550105")
    await add_lead(pool, firm.id, "Plain Person", "+16465550106", email="plain_person@x.example")
    await add_lead(pool, firm.id, "Ann Page", "+16465550108")  # "n p" would match an unescaped "n_p"
    assert [i["name"] for i in await pick(http, firm, "0%")] == ["Sale 100% Club"]
    assert await pick(http, firm, "%%") == []
    assert [i["name"] for i in await pick(http, firm, "n_p")] == ["Plain Person"]
    assert await pick(http, firm, "__") == []
    assert await pick(http, firm, "\\%") == []


async def test_bad_queries_get_a_clean_400(http, firm):
    body = await pick(http, firm, "x" * 201, status=400)
    assert body["code"] == "q_too_long" and "200" in body["error"]
    assert (await pick(http, firm, "ab\x00cd", status=400))["code"] == "bad_query"
    async with http.get(PICKER, headers=firm.headers, params={"q": "y" * 10_000}) as resp:
        assert 400 <= resp.status < 500


async def test_another_firm_sees_none_of_the_leads(http, pool, firm, make_firm):
    other = await make_firm()
    await add_lead(pool, firm.id, "Zara Only", "+16465550107")
    assert await pick(http, other, "zara") == []
    assert await pick(http, other, "6465550107") == []
    assert len(await pick(http, firm, "zara")) == 1


async def test_on_a_few_thousand_leads_every_item_is_a_sendable_newest_signup(http, pool, firm):
    async with pool.acquire() as conn:
        await generate_leads(conn, firm.id, 3000, seed=11, flag_share=0.05)
    # older than the newest 2,000 signups scanned first: found through the index path
    old = await add_lead(pool, firm.id, "Xanthippe Oldfield", "+19175550186", email="xo@archive.example",
                         signed_up_at=days_ago(5 * 365))
    for q in ("xanthippe", "oldfie", "archive.ex", "917-555-0186", "5550186"):
        assert [i["lead_id"] for i in await pick(http, firm, q)] == [old], q
    for q in ("an", "jo", "son", "mar", "gmail", "a.b", "212", "(312) 5", "55", "ez"):
        items = await pick(http, firm, q)
        assert len(items) <= 20
        assert len({i["phone"] for i in items}) == len(items), q
        for item in items:
            row = await pool.fetchrow(
                """SELECT send_block_code(firm_id, phone_status, phone_e164) AS code,
                          id = (SELECT id FROM leads n WHERE n.firm_id = l.firm_id AND n.phone_e164 = l.phone_e164
                                ORDER BY signed_up_at DESC, id DESC LIMIT 1) AS newest
                   FROM leads l WHERE id = $1 AND firm_id = $2""",
                item["lead_id"], firm.id,
            )
            assert row["code"] is None and row["newest"], (q, item)
    assert len(await pick(http, firm, "an")) == 20
