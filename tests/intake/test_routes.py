"""POST /v1/leads and GET /v1/leads/{id} through the real web app (no worker here: what
the hook stores and enqueues, and how a signup reads back)."""

from __future__ import annotations

import asyncio

import pytest

from intake.service import accept_lead
from intake.validation import LeadInput
from tests.intake.helpers import external_id, get_lead, post_lead

# What the hook writes (validation, perhaps by a worker of another test, writes the rest).
HOOK_COLUMNS = "firm_id, external_id, name, email, event, phone_raw, signed_up_at, created_at"


async def stored_lead(pool, firm, phone: str = "(212) 555-1200") -> int:
    """A signup stored as the hook stores it, with no validate job (so it stays pending)."""
    lead = LeadInput(external_id(), "Dana", "dana@example.com", "Spring seminar", phone, None)
    return (await accept_lead(pool, firm.id, lead)).lead_id


async def test_a_signup_is_stored_as_it_came_pending_and_enqueued_once(http, firm, pool, enqueued):
    status, body = await post_lead(http, firm, external_id="crm-100", phone=" +1 (212) 555-1201 ",
                                   signed_up_at="2024-05-01T18:30:00Z")

    assert status == 202
    assert body == {"lead_id": body["lead_id"], "phone_status": "pending", "duplicate": False}
    row = await pool.fetchrow("SELECT * FROM leads WHERE id = $1", body["lead_id"])
    assert (row["firm_id"], row["external_id"], row["phone_raw"]) == (firm.id, "crm-100", " +1 (212) 555-1201 ")
    assert row["signed_up_at"].isoformat() == "2024-05-01T18:30:00+00:00"
    assert enqueued.of("validate_lead") == [(body["lead_id"],)]


async def test_reposting_an_external_id_returns_the_same_lead_changes_nothing_and_enqueues_nothing(
        http, firm, pool, enqueued):
    _, first = await post_lead(http, firm, external_id="crm-7", name="Dana", phone="2125550199",
                               signed_up_at="2030-01-01T00:00:00Z")
    before = await pool.fetchrow(f"SELECT {HOOK_COLUMNS} FROM leads WHERE id = $1", first["lead_id"])

    status, again = await post_lead(http, firm, external_id="crm-7", name="Dana", phone="2125550199",
                                    signed_up_at="2030-01-01T00:00:00Z")

    assert status == 202
    assert again["lead_id"] == first["lead_id"] and again["duplicate"] is True
    assert await pool.fetchrow(f"SELECT {HOOK_COLUMNS} FROM leads WHERE id = $1", first["lead_id"]) == before
    assert await pool.fetchval("SELECT count(*) FROM leads") == 1
    assert enqueued.of("validate_lead") == [(first["lead_id"],)]


async def test_reposting_an_external_id_with_changes_updates_the_lead_and_revalidates_a_new_phone(
        http, firm, pool, enqueued):
    _, first = await post_lead(http, firm, external_id="crm-8", name="Dana")

    status, again = await post_lead(http, firm, external_id="crm-8", name="Someone Else", phone="2125550199",
                                    signed_up_at="2030-01-01T00:00:00Z")

    assert status == 200
    assert again == {"lead_id": first["lead_id"], "phone_status": "pending",
                     "updated": ["name", "phone", "signed_up_at"]}
    row = await pool.fetchrow("SELECT name, phone_raw, signed_up_at FROM leads WHERE id = $1", first["lead_id"])
    assert (row["name"], row["phone_raw"], row["signed_up_at"].isoformat()) == (
        "Someone Else", "2125550199", "2030-01-01T00:00:00+00:00")
    assert await pool.fetchval("SELECT count(*) FROM leads") == 1
    assert enqueued.of("validate_lead") == [(first["lead_id"],), (first["lead_id"],)]


async def test_concurrent_posts_of_one_external_id_make_one_lead(http, firm, pool, enqueued):
    results = await asyncio.gather(*(post_lead(http, firm, external_id="crm-race") for _ in range(10)))

    assert {status for status, _ in results} == {202}
    assert len({body["lead_id"] for _, body in results}) == 1
    assert await pool.fetchval("SELECT count(*) FROM leads") == 1
    assert len(enqueued.of("validate_lead")) == 1


async def test_the_same_external_id_in_two_firms_is_two_leads(http, make_firm):
    a, b = await make_firm(), await make_firm()
    _, one = await post_lead(http, a, external_id="shared-id")
    _, two = await post_lead(http, b, external_id="shared-id")
    assert one["lead_id"] != two["lead_id"]


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"name": "No Id"}, "missing_field", "external_id"),
        ({"external_id": ""}, "missing_field", "external_id"),
        ({"external_id": 17}, "invalid_field", "external_id"),
        ({"external_id": "x", "phone": 2125550142}, "invalid_field", "phone"),
        ({"external_id": "x", "email": "e" * 321}, "invalid_field", "email"),
        ({"external_id": "x", "name": "a\x00b"}, "invalid_field", "name"),
        ({"external_id": "x", "signed_up_at": "2024-05-01T10:00:00"}, "invalid_field", "signed_up_at"),
    ],
)
async def test_a_bad_body_gets_400_naming_the_field_and_stores_nothing(http, firm, pool, enqueued, payload, code, field):
    async with http.post("/v1/leads", json=payload, headers=firm.headers) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert (body["code"], body["field"]) == (code, field)
    assert field in body["error"]
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0
    assert enqueued.of("validate_lead") == []


@pytest.mark.parametrize(
    ("data", "code"),
    [("{not json", "invalid_json"), ("[1, 2]", "invalid_json"), ('"a string"', "invalid_json"),
     ('{"external_id": "\\ud800"}', "invalid_field")],
)
async def test_a_body_that_is_not_a_json_object_gets_400(http, firm, pool, data, code):
    headers = {**firm.headers, "Content-Type": "application/json"}
    async with http.post("/v1/leads", data=data, headers=headers) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["code"] == code and body["error"]
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_posting_without_an_api_key_is_401(http):
    async with http.post("/v1/leads", json={"external_id": "x"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["code"] == "unauthorized"


async def test_a_pending_lead_reads_back_with_the_pending_notice(http, firm, pool):
    lead_id = await stored_lead(pool, firm)

    status, lead = await get_lead(http, firm, lead_id)

    assert status == 200
    assert {k: lead[k] for k in ("lead_id", "name", "email", "event", "phone", "phone_status", "phone_error",
                                 "line_type", "sendable", "code")} == {
        "lead_id": lead_id, "name": "Dana", "email": "dana@example.com", "event": "Spring seminar",
        "phone": "(212) 555-1200", "phone_status": "pending", "phone_error": None, "line_type": None,
        "sendable": False, "code": "pending",
    }
    assert lead["notice"] == {"level": "info", "code": "pending",
                              "text": "This lead's phone number is still being checked. Try again in a moment."}
    assert lead["external_id"].startswith("crm-")


async def test_a_valid_lead_reads_back_in_e164_with_its_line_type_and_sendable(http, firm, pool):
    lead_id = await stored_lead(pool, firm, "(212) 555-1209")
    await pool.execute("UPDATE leads SET phone_status = 'valid', phone_e164 = '+12125551209' WHERE id = $1", lead_id)
    await pool.execute("INSERT INTO phone_lines (phone_e164, valid, line_type, carrier) "
                       "VALUES ('+12125551209', true, 'mobile', 'Sim Mobile')")

    _, lead = await get_lead(http, firm, lead_id)

    assert (lead["phone"], lead["phone_raw"], lead["line_type"], lead["carrier"]) == (
        "+12125551209", "(212) 555-1209", "mobile", "Sim Mobile")
    assert (lead["sendable"], lead["code"], lead["notice"]) == (True, None, None)


async def test_another_firms_lead_is_404_and_so_is_a_missing_one(http, make_firm):
    mine, theirs = await make_firm(), await make_firm()
    _, posted = await post_lead(http, theirs, external_id=external_id())

    status, body = await get_lead(http, mine, posted["lead_id"])
    assert (status, body["code"]) == (404, "not_found")
    assert (await get_lead(http, mine, 999999))[0] == 404
    assert (await get_lead(http, mine, 10**30))[0] == 404


async def test_a_signup_keeps_its_timezone_and_postal_code_and_an_invalid_timezone_is_a_400_naming_it(
        http, firm, pool, enqueued):
    status, body = await post_lead(http, firm, external_id="crm-tz", timezone="America/Denver", postal_code="80202")
    assert status == 202, body
    status, uk = await post_lead(http, firm, external_id="crm-uk", postal_code="SW1A 1AA")
    assert status == 202, uk
    rows = {r["external_id"]: r for r in await pool.fetch("SELECT external_id, timezone, postal_code FROM leads")}
    assert (rows["crm-tz"]["timezone"], rows["crm-tz"]["postal_code"]) == ("America/Denver", "80202")
    assert (rows["crm-uk"]["timezone"], rows["crm-uk"]["postal_code"]) == (None, "SW1A 1AA")  # kept, not a US ZIP

    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", 7):
        status, refused = await post_lead(http, firm, external_id=f"crm-bad-{bad}", timezone=bad)
        assert status == 400, refused
        assert refused["code"] == "invalid_field" and refused["field"] == "timezone"
        assert "timezone" in refused["error"]
    assert await pool.fetchval("SELECT count(*) FROM leads") == 2
