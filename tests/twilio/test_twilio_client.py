"""shared/twilio.py driven through the real twilio SDK against the simulator, one test per
row of the scenario table (docs/twilio-simulator.md), plus auth, transport and listing."""

from __future__ import annotations

import socket
import time

import aiohttp
import pytest

from shared.config import Settings
from shared.errors import PermanentError, TransientError
from shared.twilio import (
    LineTypeResult,
    TwilioAmbiguous,
    TwilioClient,
    TwilioError,
    TwilioNotReceived,
    TwilioPermanent,
    rewrite_twilio_url,
)

FIRM_NUMBER = "+14155559000"


def number(last_four: str) -> str:
    return "+1415555" + last_four


async def send(twilio: TwilioClient, to: str, receiver=None, body: str = "Hello from the firm"):
    callback = f"{receiver.base_url}/twilio/status?m=1" if receiver is not None else None
    return await twilio.send_message(to=to, from_=FIRM_NUMBER, body=body, status_callback=callback)


async def callback_statuses(receiver, eventually, sid: str, count: int) -> list[dict[str, str]]:
    def arrived():
        mine = [r.params for r in receiver.of_kind("/twilio/status") if r.params["MessageSid"] == sid]
        return mine if len(mine) >= count else None

    return await eventually(arrived)


# ---- the scenario table, row by row ------------------------------------------------------

@pytest.mark.parametrize(
    ("last_four", "valid", "line_type"),
    [
        ("0001", True, "landline"),
        ("0099", True, "landline"),
        ("0100", True, "mobile"),
        ("0250", True, "mobile"),
        ("0399", True, "mobile"),
        ("0400", False, None),
        ("0500", True, "mobile"),
        ("0600", True, "mobile"),
        ("0800", True, "nonFixedVoip"),
        ("0999", True, "mobile"),
        ("1234", True, "mobile"),
        ("0000", True, "mobile"),
    ],
)
async def test_lookup_reports_the_line_type_the_scenario_table_gives(twilio, last_four, valid, line_type):
    result = await twilio.lookup_line_type(number(last_four))

    assert isinstance(result, LineTypeResult)
    assert (result.phone_e164, result.valid, result.line_type) == (number(last_four), valid, line_type)
    assert (result.carrier is not None) == valid
    assert result.raw["valid"] is valid


async def test_lookup_of_a_07xx_number_answers_late_with_mobile(twilio, sim_config):
    started = time.monotonic()
    result = await twilio.lookup_line_type(number("0700"))

    assert time.monotonic() - started >= sim_config.late_delay_s
    assert result.line_type == "mobile"


async def test_send_to_a_landline_is_refused_permanently_with_21614_and_nothing_created(twilio, sim_http):
    with pytest.raises(TwilioPermanent) as caught:
        await send(twilio, number("0042"))

    assert (caught.value.kind, caught.value.code, caught.value.status) == ("permanent", 21614, 400)
    assert "not a valid mobile number" in caught.value.detail
    seen = await sim_http.get("/sim/messages")
    assert seen["messages"] == []
    assert [a["outcome"] for a in seen["attempts"]] == ["refused"]


@pytest.mark.parametrize(("last_four", "error_code"), [("0150", "30007"), ("0299", "30003")])
async def test_send_to_a_filtered_or_unreachable_number_is_queued_then_undelivered_with_its_code(
    twilio, receiver, eventually, last_four, error_code
):
    sent = await send(twilio, number(last_four), receiver)

    assert sent.status == "queued" and sent.sid.startswith("SM")
    params = await callback_statuses(receiver, eventually, sent.sid, 2)
    assert [p["MessageStatus"] for p in params] == ["sent", "undelivered"]
    assert "ErrorCode" not in params[0]
    assert params[1]["ErrorCode"] == error_code


async def test_send_to_an_unsubscribed_number_is_refused_permanently_with_21610(twilio):
    with pytest.raises(TwilioPermanent) as caught:
        await send(twilio, number("0310"))

    assert (caught.value.code, caught.value.status) == (21610, 400)


async def test_send_to_an_invalid_number_is_refused_permanently_with_21211(twilio):
    with pytest.raises(TwilioPermanent) as caught:
        await send(twilio, number("0477"))

    assert (caught.value.code, caught.value.status) == (21211, 400)


async def test_05xx_number_fails_twice_as_ambiguous_without_creating_then_is_delivered(
    twilio, receiver, eventually, sim_http
):
    to = number("0555")
    for _ in range(2):
        with pytest.raises(TwilioAmbiguous) as caught:
            await send(twilio, to, receiver)
        assert (caught.value.kind, caught.value.status, caught.value.code) == ("ambiguous", 500, 20500)
    assert await twilio.list_messages(to=to, from_=FIRM_NUMBER) == []

    sent = await send(twilio, to, receiver)

    params = await callback_statuses(receiver, eventually, sent.sid, 2)
    assert [p["MessageStatus"] for p in params] == ["sent", "delivered"]
    seen = await sim_http.get("/sim/messages", to=to)
    assert [a["outcome"] for a in seen["attempts"]] == ["refused", "refused", "created"]
    assert len(seen["messages"]) == 1


async def test_06xx_number_is_rate_limited_once_as_not_received_then_delivered(twilio, receiver, eventually):
    to = number("0612")
    with pytest.raises(TwilioNotReceived) as caught:
        await send(twilio, to, receiver)
    assert (caught.value.kind, caught.value.status, caught.value.code) == ("not_received", 429, 20429)

    sent = await send(twilio, to, receiver)

    params = await callback_statuses(receiver, eventually, sent.sid, 2)
    assert params[-1]["MessageStatus"] == "delivered"


async def test_07xx_number_is_queued_late_and_delivered(twilio, receiver, eventually, sim_config):
    started = time.monotonic()
    sent = await send(twilio, number("0707"), receiver)

    assert time.monotonic() - started >= sim_config.late_delay_s
    assert sent.status == "queued"
    params = await callback_statuses(receiver, eventually, sent.sid, 2)
    assert params[-1]["MessageStatus"] == "delivered"


async def test_07xx_send_that_outlasts_the_client_timeout_is_ambiguous_and_twilio_still_has_it(
    sim_url, sim_config, eventually
):
    sid, token = sim_config.account_sid, sim_config.auth_token
    impatient = TwilioClient(sid, token, base_url=sim_url, timeout=sim_config.late_delay_s / 3)
    try:
        with pytest.raises(TwilioAmbiguous) as caught:
            await send(impatient, number("0789"), body="Are you coming tonight?")
        assert caught.value.status is None
    finally:
        await impatient.close()

    async with TwilioClient(sid, token, base_url=sim_url) as patient:
        found = await eventually(lambda: patient.list_messages(to=number("0789"), from_=FIRM_NUMBER))
    assert [m.body for m in found] == ["Are you coming tonight?"]


async def test_08xx_number_is_delivered(twilio, receiver, eventually):
    sent = await send(twilio, number("0808"), receiver)

    params = await callback_statuses(receiver, eventually, sent.sid, 2)
    assert [p["MessageStatus"] for p in params] == ["sent", "delivered"]


async def test_09xx_first_send_is_ambiguous_yet_created_and_the_list_shows_it(twilio, receiver, eventually):
    to = number("0901")
    with pytest.raises(TwilioAmbiguous) as caught:
        await send(twilio, to, receiver, body="first try")
    assert (caught.value.status, caught.value.code) == (500, 20500)

    listed = await twilio.list_messages(to=to, from_=FIRM_NUMBER)
    assert [m.body for m in listed] == ["first try"]

    sent = await send(twilio, to, receiver, body="second try")
    assert sent.status == "queued"
    params = await callback_statuses(receiver, eventually, sent.sid, 2)
    assert params[-1]["MessageStatus"] == "delivered"


async def test_any_other_number_is_queued_with_segments_and_delivered(twilio, receiver, eventually):
    sent = await send(twilio, number("4321"), receiver, body="x" * 161)

    assert (sent.status, sent.num_segments) == ("queued", 2)
    assert sent.date_created is not None and sent.date_created.tzinfo is not None
    params = await callback_statuses(receiver, eventually, sent.sid, 2)
    assert [p["MessageStatus"] for p in params] == ["sent", "delivered"]


# ---- listing -----------------------------------------------------------------------------

async def test_list_messages_returns_the_pair_s_messages_newest_first(twilio):
    to, other = number("3000"), number("3001")
    for i in range(5):
        await send(twilio, to, body=f"message {i}")
    await send(twilio, other, body="someone else")
    await twilio.send_message(to=to, from_="+14155558000", body="another firm", status_callback=None)

    listed = await twilio.list_messages(to=to, from_=FIRM_NUMBER)

    assert [m.body for m in listed] == [f"message {i}" for i in (4, 3, 2, 1, 0)]
    assert all((m.to, m.from_) == (to, FIRM_NUMBER) for m in listed)
    assert [m.body for m in await twilio.list_messages(to=to, from_=FIRM_NUMBER, limit=2)] == ["message 4", "message 3"]


# ---- errors outside the table ------------------------------------------------------------

async def test_wrong_auth_token_is_a_permanent_error_with_code_20003(sim_url, sim_config):
    async with TwilioClient(sim_config.account_sid, "not-the-token", base_url=sim_url) as wrong:
        with pytest.raises(TwilioPermanent) as caught:
            await send(wrong, number("4321"))

    assert (caught.value.status, caught.value.code) == (401, 20003)


async def test_wrong_auth_on_the_list_is_also_a_permanent_20003(sim_url, sim_config):
    async with TwilioClient(sim_config.account_sid, "not-the-token", base_url=sim_url) as wrong:
        with pytest.raises(TwilioPermanent) as caught:
            await wrong.list_messages(to=number("4321"), from_=FIRM_NUMBER)

    assert (caught.value.status, caught.value.code) == (401, 20003)


async def test_connection_refused_is_not_received(sim_config):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    refused = f"http://127.0.0.1:{closed_port}"
    async with TwilioClient(sim_config.account_sid, sim_config.auth_token, base_url=refused) as client:
        with pytest.raises(TwilioNotReceived) as caught:
            await send(client, number("4321"))

    assert caught.value.kind == "not_received" and caught.value.status is None
    assert caught.value.__cause__ is not None


def test_error_kinds_map_onto_the_retry_hierarchy():
    assert issubclass(TwilioNotReceived, TransientError)
    assert issubclass(TwilioAmbiguous, TransientError)
    assert issubclass(TwilioPermanent, PermanentError)
    assert not issubclass(TwilioPermanent, TransientError)


# ---- wiring ------------------------------------------------------------------------------

def test_twilio_hosts_are_rewritten_to_the_base_url_keeping_path_and_query():
    base = "http://127.0.0.1:8081"
    assert rewrite_twilio_url("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1", base) == (
        "http://127.0.0.1:8081/2010-04-01/Accounts/AC1/Messages.json?To=%2B1"
    )
    assert rewrite_twilio_url("https://lookups.twilio.com/v2/PhoneNumbers/+14155550100", base) == (
        "http://127.0.0.1:8081/v2/PhoneNumbers/+14155550100"
    )
    assert rewrite_twilio_url("https://example.com/x", base) == "https://example.com/x"
    assert rewrite_twilio_url("https://api.twilio.com/x", None) == "https://api.twilio.com/x"


async def test_client_from_settings_talks_to_twilio_base_url(sim_url, sim_config):
    settings = Settings(twilio_account_sid=sim_config.account_sid,
                        twilio_auth_token=sim_config.auth_token, twilio_base_url=sim_url)
    client = TwilioClient.from_settings(settings)
    try:
        result = await client.lookup_line_type(number("0800"))
    finally:
        await client.close()

    assert result.line_type == "nonFixedVoip"


async def test_a_client_from_settings_gives_up_after_twilio_timeout_s(sim_url, sim_config):
    settings = Settings(twilio_account_sid=sim_config.account_sid, twilio_auth_token=sim_config.auth_token,
                        twilio_base_url=sim_url, twilio_timeout_s=1)
    client = TwilioClient.from_settings(settings)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim_url}/sim/config", json={"list_slow_s": 3.0}) as resp:
            assert resp.status == 200
        started = time.monotonic()
        try:
            with pytest.raises(TwilioError):
                await client.list_messages(to="+12125550100", from_=None)
            elapsed = time.monotonic() - started
        finally:
            await client.close()
            async with http.post(f"{sim_url}/sim/config", json={"list_slow_s": 0}) as resp:
                assert resp.status == 200
    assert 0.9 <= elapsed < 2.5, f"gave up after {elapsed:.1f} s (TWILIO_TIMEOUT_S=1, Twilio answering in 3 s)"
