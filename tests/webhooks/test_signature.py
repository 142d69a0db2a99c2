"""Only Twilio's signed requests get in; a valid one is stored before it is answered."""



from devtools.twilio_sim.signing import inbound_params, status_params
from tests.webhooks.support import (add_outbound, app_with_cuttable_database, message, post_form, post_signed,
                                    send_status, sign)

PHONE = "+16465551234"


async def _inbox_count(pool) -> int:
    """Rows this test's requests stored (a late simulator callback from another test is not one)."""
    return await pool.fetchval(
        "SELECT count(*) FROM twilio_inbox WHERE $1 IN (params->>'From', params->>'To')", PHONE)


def _status(settings, sid, status="delivered"):
    return status_params(account_sid=settings.twilio_account_sid, sid=sid, to=PHONE, from_="+16465550100",
                         status=status)


async def test_a_signed_status_callback_is_stored_with_our_message_id_and_answered_204(http, settings, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid="SM1")
    answer = await send_status(http, settings, message_id=message_id, sid="SM1", status="sent")
    assert answer.status == 204 and answer.text == ""
    row = await pool.fetchrow("SELECT * FROM twilio_inbox WHERE message_sid = 'SM1'")
    assert (row["kind"], row["message_sid"], row["twilio_status"], row["message_id"]) == (
        "status", "SM1", "sent", message_id)
    assert row["params"]["MessageStatus"] == "sent"


async def test_a_signed_inbound_text_is_answered_with_empty_twiml(http, settings, pool, firm):
    params = inbound_params(account_sid=settings.twilio_account_sid, from_=PHONE, to=firm.number, body="Hello")
    answer = await post_signed(http, settings, "/twilio/inbound", params)
    assert answer.status == 200
    assert answer.content_type == "text/xml"
    assert answer.text == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    assert await _inbox_count(pool) == 1


async def test_an_unsigned_request_is_refused_and_changes_nothing(http, settings, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid="SM2")
    answer = await post_form(http, f"/twilio/status?m={message_id}", _status(settings, "SM2"))
    assert answer.status == 403 and '"code": "bad_signature"' in answer.text
    params = inbound_params(account_sid=settings.twilio_account_sid, from_=PHONE, to=firm.number, body="STOP")
    assert (await post_form(http, "/twilio/inbound", params)).status == 403
    assert await _inbox_count(pool) == 0
    assert (await message(pool, message_id))["status"] == "sending"
    assert await pool.fetchval("SELECT count(*) FROM consent_events") == 0


async def test_a_forged_request_is_refused_and_changes_nothing(http, settings, pool, firm):
    params = inbound_params(account_sid=settings.twilio_account_sid, from_=PHONE, to=firm.number, body="Hello")
    signature = sign(settings.twilio_auth_token, settings.public_base_url + "/twilio/inbound", params)
    tampered = {**params, "Body": "STOP"}  # a real signature, over other parameters
    assert (await post_form(http, "/twilio/inbound", tampered, signature=signature)).status == 403
    assert (await post_form(http, "/twilio/inbound", params, signature="bm90IGEgc2lnbmF0dXJl")).status == 403
    other_path = sign(settings.twilio_auth_token, settings.public_base_url + "/twilio/status?m=1", params)
    assert (await post_form(http, "/twilio/status?m=2", params, signature=other_path)).status == 403
    assert await _inbox_count(pool) == 0
    assert await pool.fetchval("SELECT count(*) FROM consent_events") == 0


async def test_a_request_signed_with_another_accounts_token_is_refused(http, settings, pool, firm):
    params = inbound_params(account_sid=settings.twilio_account_sid, from_=PHONE, to=firm.number, body="STOP")
    answer = await post_signed(http, settings, "/twilio/inbound", params, token="some-other-accounts-token")
    assert answer.status == 403
    assert await _inbox_count(pool) == 0
    assert await pool.fetchval("SELECT count(*) FROM phone_flags") == 0


async def test_the_signature_is_checked_against_the_configured_url_not_the_host_header(http, settings, pool, firm):
    params = _status(settings, "SM3")
    forged_host = "evil.example"
    signature = sign(settings.twilio_auth_token, f"http://{forged_host}/twilio/status", params)
    answer = await post_form(http, "/twilio/status", params, signature=signature, headers={"Host": forged_host})
    assert answer.status == 403
    # Signed for PUBLIC_BASE_URL: accepted whatever Host the request arrived with.
    signature = sign(settings.twilio_auth_token, settings.public_base_url + "/twilio/status", params)
    answer = await post_form(http, "/twilio/status", params, signature=signature, headers={"Host": "proxy.internal"})
    assert answer.status == 204
    assert await _inbox_count(pool) == 1


async def test_a_request_signed_for_the_configured_url_without_its_port_is_accepted_too(http, settings, pool, firm):
    """Twilio's signing of ports is inconsistent; the SDK's check accepts either form, and
    so do we once the exact URL's signature does not match."""
    params = _status(settings, "SM3port")
    assert ":" in settings.public_base_url.split("//", 1)[1], "these tests' PUBLIC_BASE_URL names a port"
    portless = settings.public_base_url.rsplit(":", 1)[0] + "/twilio/status"
    answer = await post_form(http, "/twilio/status", params, signature=sign(settings.twilio_auth_token, portless, params))
    assert answer.status == 204
    assert await _inbox_count(pool) == 1
    forged = sign("not-the-token", portless, params)
    assert (await post_form(http, "/twilio/status", params, signature=forged)).status == 403


async def test_a_json_body_is_refused_with_a_client_error(http, settings, pool):
    async with http.post("/twilio/status", json={"MessageSid": "SM4"}, headers={"X-Twilio-Signature": "x"}) as r:
        assert r.status == 415
        assert (await r.json())["code"] == "unsupported_media_type"
    assert await _inbox_count(pool) == 0


async def test_a_signed_request_without_a_message_sid_is_a_client_error(http, settings, pool):
    answer = await post_signed(http, settings, "/twilio/status", {"MessageStatus": "sent"})
    assert answer.status == 400
    assert await _inbox_count(pool) == 0


async def test_a_replayed_webhook_is_stored_once_and_still_answered(http, settings, pool, firm):
    params = _status(settings, "SM5")
    for _ in range(3):
        assert (await post_signed(http, settings, "/twilio/status", params)).status == 204
    assert await _inbox_count(pool) == 1


async def test_webhooks_answer_503_when_postgresql_is_down(settings, services, deps, pool, firm, broker):
    import aiohttp

    async with app_with_cuttable_database(settings, services, deps, broker) as (down_settings, proxy):
        await proxy.cut()
        params = inbound_params(account_sid=settings.twilio_account_sid, from_=PHONE, to=firm.number, body="STOP")
        async with aiohttp.ClientSession(base_url=down_settings.public_base_url) as session:
            answer = await post_signed(session, down_settings, "/twilio/inbound", params)
        assert answer.status == 503 and '"code": "unavailable"' in answer.text
        assert await _inbox_count(pool) == 0


async def test_a_form_body_that_is_not_utf8_is_refused_with_json_and_stores_nothing(http, settings, pool, firm):
    message_id = await add_outbound(pool, firm.id, PHONE, sid="SM3")
    for path in (f"/twilio/status?m={message_id}", "/twilio/inbound"):
        for body in (b"MessageSid=SM3&Body=\xff\xfe", b"MessageSid=SM3&Body=%ff%fe"):
            async with http.post(path, data=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "c2ln"}) as resp:
                assert resp.status in (400, 403), await resp.text()
                assert resp.content_type == "application/json"
                assert (await resp.json())["code"]
    assert await pool.fetchval("SELECT count(*) FROM twilio_inbox") == 0
    assert (await message(pool, message_id))["status"] == "sending"
