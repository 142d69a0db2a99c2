"""The simulator behaves as Twilio does where leadsms depends on it: accounts and what
they own, Twilio's default opt-out per sender, the refusals Twilio answers, Messaging
Services, callback fields, list filters and DELETE."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from twilio.request_validator import RequestValidator

from shared.twilio import TwilioClient, TwilioPermanent
from tests.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN, FIRM_NUMBER

SUB, SUB_TOKEN = "AC" + "c" * 32, "sub-token"
SUB_NUMBER = "+14155559100"
SERVICE = "MG" + "d" * 32
POOL = ["+14155559201", "+14155559202"]
LEAD = "+14155554321"


async def _code(coro) -> int | None:
    with pytest.raises(TwilioPermanent) as caught:
        await coro
    return caught.value.code


async def test_a_subaccount_authenticates_with_its_own_token_and_owns_only_its_numbers(sim_url, sim_http):
    status, _ = await sim_http.post("/sim/accounts", {"sid": SUB, "auth_token": SUB_TOKEN, "numbers": [SUB_NUMBER]})
    assert status == 200
    async with TwilioClient(SUB, SUB_TOKEN, base_url=sim_url) as sub:
        sent = await sub.send_message(to=LEAD, from_=SUB_NUMBER, body="hi", status_callback=None)
        assert sent.from_ == SUB_NUMBER
        assert await _code(sub.send_message(to=LEAD, from_=FIRM_NUMBER, body="hi", status_callback=None)) == 21606
        assert [m.sid for m in await sub.list_messages(to=LEAD, from_=None)] == [sent.sid]
    async with TwilioClient(SUB, "wrong", base_url=sim_url) as wrong:
        assert await _code(wrong.probe()) == 20003


async def test_the_main_account_owns_every_number_until_numbers_are_registered_for_it(twilio, sim_http):
    await twilio.send_message(to=LEAD, from_="+14155550000", body="any number", status_callback=None)
    await sim_http.post("/sim/accounts", {"sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "numbers": [FIRM_NUMBER]})
    assert await _code(twilio.send_message(to=LEAD, from_="+14155550000", body="x", status_callback=None)) == 21606
    await twilio.send_message(to=LEAD, from_=FIRM_NUMBER, body="its own", status_callback=None)


async def test_after_a_stop_to_a_sender_creates_from_it_get_21610_until_start(twilio, sim_http):
    await sim_http.post("/sim/inbound", {"from": LEAD, "to": FIRM_NUMBER, "body": "Stop"})
    assert await _code(twilio.send_message(to=LEAD, from_=FIRM_NUMBER, body="x", status_callback=None)) == 21610
    await twilio.send_message(to=LEAD, from_="+14155550001", body="another sender", status_callback=None)
    await sim_http.post("/sim/inbound", {"from": LEAD, "to": FIRM_NUMBER, "body": "START"})
    await twilio.send_message(to=LEAD, from_=FIRM_NUMBER, body="back", status_callback=None)


async def test_an_invalid_to_is_21211_and_a_validity_period_outside_1_to_36000_is_refused(twilio, sim_url):
    assert await _code(twilio.send_message(to="+12120001234", from_=FIRM_NUMBER, body="x", status_callback=None)) \
        == 21211
    for bad in (0, 36001):
        create = twilio._call("create", lambda: twilio._client.messages.create_async(
            to=LEAD, from_=FIRM_NUMBER, body="x", validity_period=bad))
        assert await _code(create) == 21609
    created = await twilio._client.messages.create_async(to=LEAD, from_=FIRM_NUMBER, body="x", validity_period=36000)
    assert created.sid.startswith("SM")


async def test_lookup_says_valid_false_for_a_number_phonenumbers_rejects(twilio):
    result = await twilio.lookup_line_type("+12120001234")
    assert result.valid is False and result.line_type is None


async def test_a_messaging_service_send_answers_without_from_and_its_callbacks_name_the_service_and_sender(
        sim_http, sim_url, receiver, eventually):
    await sim_http.post("/sim/accounts", {"sid": SUB, "auth_token": SUB_TOKEN, "messaging_services": {SERVICE: POOL}})
    async with TwilioClient(SUB, SUB_TOKEN, base_url=sim_url) as sub:
        sent = await sub.send_message(to=LEAD, from_=None, body="via the service", messaging_service_sid=SERVICE,
                                      status_callback=f"{receiver.base_url}/twilio/status?m=7")
        assert sent.from_ is None and sent.status == "accepted"
        assert await _code(sub.send_message(to=LEAD, from_=None, body="x", messaging_service_sid="MG" + "e" * 32,
                                            status_callback=None)) == 21705
    received = await eventually(lambda: len(receiver.of_kind("/twilio/status")) >= 2 and receiver.received)
    first, outcome = received[0].params, received[-1].params
    assert first["MessagingServiceSid"] == SERVICE and first["From"] in POOL and first["AccountSid"] == SUB
    assert RequestValidator(SUB_TOKEN).validate(received[0].url, first, received[0].signature)
    assert outcome["MessageStatus"] == "delivered" and len(outcome["RawDlrDoneDate"]) == 10


async def test_an_inbound_text_to_a_service_number_names_the_service_and_is_signed_by_its_account(
        sim_http, receiver, eventually):
    await sim_http.post("/sim/accounts", {"sid": SUB, "auth_token": SUB_TOKEN, "messaging_services": {SERVICE: POOL}})
    await sim_http.post("/sim/inbound", {"from": LEAD, "to": POOL[0], "body": "hello"})
    got = await eventually(lambda: receiver.of_kind("/twilio/inbound"))
    assert got[0].params["MessagingServiceSid"] == SERVICE and got[0].params["AccountSid"] == SUB
    assert RequestValidator(SUB_TOKEN).validate(got[0].url, got[0].params, got[0].signature)


async def test_the_list_filters_by_date_sent_and_delete_removes_a_message(twilio, eventually):
    sent = await twilio.send_message(to=LEAD, from_=FIRM_NUMBER, body="dated", status_callback=None)

    async def is_sent() -> bool:
        return (await twilio._client.messages(sent.sid).fetch_async()).date_sent is not None

    async def listed(**filters) -> list[str]:
        return [m.sid for m in await twilio._client.messages.list_async(to=LEAD, **filters)]

    await eventually(is_sent)
    today = datetime.combine(datetime.now(timezone.utc).date(), datetime.min.time())
    assert await listed(date_sent_after=today) == [sent.sid]
    assert await listed(date_sent_before=today - timedelta(days=1)) == []
    assert await twilio._client.messages(sent.sid).delete_async() is True
    assert await listed() == []


async def test_knobs_reorder_and_duplicate_status_callbacks(twilio, receiver, eventually, sim_http):
    status, _ = await sim_http.post("/sim/config", {"callback_reorder_rate": 1, "callback_duplicate_rate": 1})
    assert status == 200
    await twilio.send_message(to=LEAD, from_=FIRM_NUMBER, body="x", status_callback=f"{receiver.base_url}/twilio/status")
    got = await eventually(lambda: len(receiver.of_kind("/twilio/status")) >= 4 and receiver.of_kind("/twilio/status"))
    assert [c.params["MessageStatus"] for c in got] == ["delivered", "delivered", "sent", "sent"]
    assert all(c.valid for c in got)


async def test_a_failed_scenario_ends_failed_with_its_error_code(twilio, receiver, eventually):
    await twilio.send_message(to="+14155551195", from_=FIRM_NUMBER, body="x",
                              status_callback=f"{receiver.base_url}/twilio/status")
    got = await eventually(lambda: len(receiver.of_kind("/twilio/status")) >= 2 and receiver.of_kind("/twilio/status"))
    assert got[-1].params["MessageStatus"] == "failed" and got[-1].params["ErrorCode"] == "30001"
    assert "RawDlrDoneDate" not in got[-1].params
