"""Staff opt-outs, their removal, the firm's opt-out list and a phone's consent export,
through the HTTP API."""

from __future__ import annotations

import csv

from tests.webhooks.support import send_inbound, settle

PHONE = "+16465551234"


async def _opt_out(http, firm, phone, user="staff-1", **body):
    async with http.post("/v1/opt-outs", json={"phone": phone, **body}, headers=firm.user(user)) as r:
        return r.status, await r.json()


async def _remove(http, firm, path_phone, user="staff-1"):
    async with http.delete(f"/v1/opt-outs/{path_phone}", headers=firm.user(user)) as r:
        return r.status, (await r.json() if r.status != 204 else None)


async def _export(http, firm, phone, fmt=None):
    params = {"format": fmt} if fmt else {}
    async with http.get(f"/v1/consent/{phone}", params=params, headers=firm.headers) as r:
        assert r.status == 200, await r.text()
        return await r.text() if fmt == "csv" else await r.json()


async def test_a_staff_opt_out_and_its_removal_each_appear_in_the_consent_export_with_the_user(http, firm):
    status, created = await _opt_out(http, firm, "(646) 555-1234", user="alice", reason="asked on the phone")
    assert (status, created) == (201, {"phone": PHONE, "opted_out": True, "source": "staff:alice"})
    status, again = await _opt_out(http, firm, PHONE, user="bob")
    assert (status, again["source"]) == (200, "staff:alice")

    assert await _remove(http, firm, "%2B16465551234", user="carol") == (204, None)
    assert await _remove(http, firm, "+16465551234", user="carol") == (
        404, {"error": "This phone is not opted out.", "code": "not_opted_out"})

    exported = await _export(http, firm, PHONE)
    assert [(e["kind"], e["source"], e["user"], e["detail"]) for e in exported["items"]] == [
        ("opt_out", "staff:alice", "alice", "asked on the phone"),
        ("opt_in", "staff:carol", "carol", "removed staff:alice"),
    ]
    rows = list(csv.DictReader((await _export(http, firm, "%2B16465551234", "csv")).splitlines()))
    assert [(r["kind"], r["user"]) for r in rows] == [("opt_out", "alice"), ("opt_in", "carol")]
    assert all(r["at"] for r in rows)


async def test_staff_cannot_lift_an_opt_out_the_lead_asked_for(http, settings, deps, firm):
    assert (await send_inbound(http, settings, from_=PHONE, to=firm.number, body="Stop")).status == 200
    status, refused = await _remove(http, firm, "%2B16465551234")
    assert (status, refused["code"], refused["source"]) == (409, "lead_opt_out", "keyword:stop")
    assert refused["error"] == ("The lead opted out themselves, so staff cannot lift it: "
                                "only the lead can opt back in, by texting START.")
    exported = await _export(http, firm, PHONE)
    sid = exported["items"][0]["message_sid"]
    assert [(e["kind"], e["source"], e["detail"]) for e in exported["items"]] == [("opt_out", "keyword:stop", "Stop")]
    assert sid and sid.startswith("SM")


async def test_a_stop_over_a_staff_opt_out_takes_its_source_so_staff_can_no_longer_lift_it(http, settings, deps, firm):
    await _opt_out(http, firm, PHONE, user="alice")
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="STOP")
    await send_inbound(http, settings, from_=PHONE, to=firm.number, body="STOP")  # no change: nothing recorded
    await settle(deps)
    exported = await _export(http, firm, PHONE)
    assert [(e["kind"], e["source"]) for e in exported["items"]] == [
        ("opt_out", "staff:alice"), ("opt_out", "keyword:stop")]
    assert (await _remove(http, firm, "%2B16465551234"))[1]["code"] == "lead_opt_out"
    # a later staff opt-out changes nothing either
    assert (await _opt_out(http, firm, PHONE, user="bob")) == (
        200, {"phone": PHONE, "opted_out": True, "source": "keyword:stop"})


async def test_a_path_phone_that_is_not_e164_is_400_and_bad_bodies_are_400(http, firm):
    for path_phone in ("6465551234", "%2B1646555abcd", "(646)555-1234", "%2B0123"):
        async with http.delete(f"/v1/opt-outs/{path_phone}", headers=firm.user()) as r:
            assert (r.status, (await r.json())["code"]) == (400, "invalid_phone"), path_phone
        async with http.get(f"/v1/consent/{path_phone}", headers=firm.headers) as r:
            assert (r.status, (await r.json())["code"]) == (400, "invalid_phone"), path_phone
    assert (await _opt_out(http, firm, "not a phone"))[1]["code"] == "invalid_phone"
    assert (await _opt_out(http, firm, PHONE, reason=7))[1]["code"] == "invalid_reason"
    async with http.post("/v1/opt-outs", json={"phone": PHONE}, headers=firm.headers) as r:
        assert (r.status, (await r.json())["code"]) == (400, "missing_user")


async def test_the_opt_out_list_pages_and_another_firm_sees_none_of_it(http, firm, make_firm):
    phones = [f"+1646555{n:04d}" for n in range(2001, 2006)]
    for phone in phones:
        await _opt_out(http, firm, phone)
    seen, after = [], None
    while True:
        params = {"limit": "2", **({"after": after} if after else {})}
        async with http.get("/v1/opt-outs", params=params, headers=firm.headers) as r:
            page = await r.json()
        assert all(set(i) == {"phone", "source", "at"} for i in page["items"])
        seen += [i["phone"] for i in page["items"]]
        if not (after := page["next"]):
            break
    assert seen == phones
    other = await make_firm()
    async with http.get("/v1/opt-outs", headers=other.headers) as r:
        assert await r.json() == {"items": [], "next": None}
    assert await _remove(http, other, "%2B16465552001") == (
        404, {"error": "This phone is not opted out.", "code": "not_opted_out"})
    async with http.get("/v1/opt-outs", params={"limit": "0"}, headers=firm.headers) as r:
        assert (r.status, (await r.json())["code"]) == (400, "invalid_limit")


async def test_a_21610_over_a_list_opt_out_takes_its_source_and_a_list_never_takes_the_leads(pool, firm):
    from consent import ledger

    async with pool.acquire() as conn:
        assert await ledger.opt_out_many(conn, firm.id, [PHONE], "list:old.csv") == [PHONE]
        assert await ledger.opt_out(conn, firm.id, PHONE, "twilio_21610", message_sid="SMx") is True
        assert await ledger.opt_out(conn, firm.id, PHONE, "twilio_21610") is False  # no change, no row
        assert await ledger.opt_out_many(conn, firm.id, [PHONE], "list:new.csv") == []
        assert await ledger.opt_out(conn, firm.id, PHONE, "staff:alice") is False
    rows = await pool.fetch("SELECT kind, source FROM consent_events ORDER BY id")
    assert [(r["kind"], r["source"]) for r in rows] == [("opt_out", "list:old.csv"), ("opt_out", "twilio_21610")]
    assert await pool.fetchval("SELECT opted_out_source FROM phone_flags") == "twilio_21610"
