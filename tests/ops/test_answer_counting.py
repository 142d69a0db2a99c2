"""Sends refused or deduplicated and Twilio webhook results, counted from the real routes'
answers (the API's statuses and codes) and read back on `/metrics`."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from tests.ops.test_metrics import at, samples


async def _conversation(conn, firm_id: int, phone: str, line_type: str = "mobile", opted_out: bool = False) -> int:
    await conn.execute(
        """INSERT INTO leads (firm_id, external_id, name, phone_raw, phone_e164, phone_status)
           VALUES ($1, $2, 'Dana', $2, $2, 'valid')""", firm_id, phone)
    await conn.execute("INSERT INTO phone_lines (phone_e164, valid, line_type) VALUES ($1, true, $2)", phone, line_type)
    if opted_out:
        await conn.execute(
            """INSERT INTO phone_flags (firm_id, phone_e164, opted_out, opted_out_at, opted_out_source)
               VALUES ($1, $2, true, now(), 'keyword:stop')""", firm_id, phone)
    return await conn.fetchval(
        """INSERT INTO conversations (firm_id, phone_e164, lead_id)
           VALUES ($1, $2, (SELECT id FROM leads WHERE phone_e164 = $2)) RETURNING id""", firm_id, phone)


async def test_refused_and_duplicate_sends_are_counted(metrics_http, ops_http, pool, firm):
    async with pool.acquire() as conn:
        ok = await _conversation(conn, firm.id, "+16465559001")
        stop = await _conversation(conn, firm.id, "+16465559002", opted_out=True)
        land = await _conversation(conn, firm.id, "+16465559003", line_type="landline")

    async def send(conv: int, body: str) -> tuple[int, dict]:
        async with ops_http.post(f"/v1/conversations/{conv}/messages", json={"body": body},
                                 headers=firm.user("u1")) as resp:
            return resp.status, await resp.json()

    status, answer = await send(stop, "hello")
    assert (status, answer["code"]) == (409, "opted_out")
    status, answer = await send(land, "hello")
    assert (status, answer["code"]) == (409, "landline")
    first, _ = await send(ok, "See you Tuesday")
    again, duplicate = await send(ok, "See you Tuesday")
    assert (first, again) == (202, 200) and duplicate["deduplicated"] is True

    async with metrics_http.get("/metrics") as resp:
        f = samples(await resp.text())
    assert at(f, "leadsms_sends_refused_total", code="opted_out") == 1
    assert at(f, "leadsms_sends_refused_total", code="landline") == 1
    assert at(f, "leadsms_sends_refused_total", code="rate_limited") == 0
    assert at(f, "leadsms_sends_deduplicated_total") == 1


async def test_forged_and_genuine_twilio_callbacks_are_counted_by_result(metrics_http, ops_http, settings, deps):
    path = "/twilio/status?m=1"
    params = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered", "AccountSid": settings.twilio_account_sid}
    good = RequestValidator(settings.twilio_auth_token).compute_signature(settings.public_base_url + path, params)
    async with ops_http.post(path, data=params, headers={"X-Twilio-Signature": "forged"}) as resp:
        if resp.status == 404:
            pytest.skip("the webhooks package does not mount /twilio/status yet")
        assert resp.status == 403
    async with ops_http.post(path, data=params) as resp:  # unsigned
        assert resp.status == 403
    async with ops_http.post(path, data=params, headers={"X-Twilio-Signature": good}) as resp:
        assert resp.status == 204

    async with metrics_http.get("/metrics") as resp:
        f = samples(await resp.text())
    assert at(f, "leadsms_webhook_requests_total", kind="status", result="bad_signature") == 2
    assert at(f, "leadsms_webhook_requests_total", kind="status", result="ok") == 1
    assert at(f, "leadsms_webhook_requests_total", kind="status", result="error") == 0
    assert at(f, "leadsms_webhook_requests_total", kind="inbound", result="ok") == 0
