"""The simulator itself: signed callbacks and inbound texts, inspection, reset, run-time
config, paging and validation, as a webhook or a test sees them over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from shared.config import Settings
from shared.twilio import TwilioPermanent
from devtools.twilio_sim import DEFAULT_PORT, SimConfig, scenario_for

FIRM_NUMBER = "+14155559000"
LEAD = "+14155554321"
ROOT = Path(__file__).resolve().parents[2]


async def send(twilio, receiver, to: str = LEAD, body: str = "See you at the open house"):
    return await twilio.send_message(to=to, from_=FIRM_NUMBER, body=body,
                                     status_callback=f"{receiver.base_url}/twilio/status?m=42")


# ---- signed webhooks ---------------------------------------------------------------------

async def test_status_callbacks_validate_with_request_validator_for_the_configured_token_and_url(
    twilio, receiver, eventually, sim_config
):
    sent = await send(twilio, receiver)

    received = await eventually(lambda: len(receiver.of_kind("/twilio/status")) >= 2 and receiver.received)
    for callback in received:
        assert callback.url == f"{receiver.base_url}/twilio/status?m=42"
        assert callback.valid
        assert RequestValidator(sim_config.auth_token).validate(callback.url, callback.params, callback.signature)
        assert not RequestValidator("some-other-token").validate(callback.url, callback.params, callback.signature)
    assert received[0].params["MessageSid"] == sent.sid


async def test_status_callbacks_carry_twilio_s_fields_sent_then_the_outcome(
    twilio, receiver, eventually, sim_config
):
    sent = await send(twilio, receiver, to="+14155550123")

    received = await eventually(lambda: len(receiver.of_kind("/twilio/status")) >= 2 and receiver.received)
    assert received[0].params == {
        "SmsSid": sent.sid, "SmsStatus": "sent", "MessageStatus": "sent", "To": "+14155550123",
        "MessageSid": sent.sid, "AccountSid": sim_config.account_sid, "From": FIRM_NUMBER,
        "ApiVersion": "2010-04-01",
    }
    assert received[1].params["MessageStatus"] == received[1].params["SmsStatus"] == "undelivered"
    assert received[1].params["ErrorCode"] == "30007"


async def test_each_callback_s_answer_status_is_recorded(twilio, receiver, eventually, sim_http):
    receiver.answer_status = 503
    sent = await send(twilio, receiver)

    async def both_recorded():
        records = (await sim_http.get("/sim/callbacks", sid=sent.sid))["callbacks"]
        return records if len(records) == 2 else None

    records = await eventually(both_recorded)
    assert [(r["message_status"], r["answer_status"]) for r in records] == [("sent", 503), ("delivered", 503)]
    assert (await sim_http.get("/sim/counters"))["status_posts_failed"] == 2


async def test_inbound_endpoint_delivers_a_signed_text_to_public_base_url(sim_http, receiver, sim_config):
    status, answer = await sim_http.post("/sim/inbound", {"from": LEAD, "to": FIRM_NUMBER, "body": "STOP"})

    assert status == 200
    assert answer["answer_status"] == 200 and answer["url"] == f"{receiver.base_url}/twilio/inbound"
    [inbound] = receiver.of_kind("/twilio/inbound")
    assert inbound.valid
    assert inbound.params["MessageSid"] == answer["message_sid"] and inbound.params["MessageSid"].startswith("SM")
    assert {k: inbound.params[k] for k in ("AccountSid", "From", "To", "Body", "NumMedia", "NumSegments",
                                             "SmsStatus", "ApiVersion")} == {
        "AccountSid": sim_config.account_sid, "From": LEAD, "To": FIRM_NUMBER, "Body": "STOP",
        "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01",
    }
    [record] = (await sim_http.get("/sim/callbacks", kind="inbound"))["callbacks"]
    assert record["answer_status"] == 200


async def test_inbound_endpoint_refuses_a_payload_without_from_to_and_body(sim_http, receiver):
    status, answer = await sim_http.post("/sim/inbound", {"from": LEAD})

    assert status == 400 and answer["code"] == "bad_request"
    assert receiver.received == []


async def test_cli_inbound_delivers_a_signed_text_and_prints_the_answer(receiver, sim_config):
    env = {**os.environ, "TWILIO_AUTH_TOKEN": sim_config.auth_token,
           "TWILIO_ACCOUNT_SID": sim_config.account_sid, "PUBLIC_BASE_URL": receiver.base_url,
           "LOG_FORMAT": "json"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from shared.cli import main; sys.exit(main())",
        "twilio-sim", "inbound", "--from", LEAD, "--to", FIRM_NUMBER, "--body", "Yes, I'll be there",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 0, stderr.decode()
    printed = json.loads(stdout.decode().strip().splitlines()[-1])
    assert printed["answer_status"] == 200
    [inbound] = receiver.of_kind("/twilio/inbound")
    assert inbound.valid and inbound.params["Body"] == "Yes, I'll be there"
    assert inbound.params["MessageSid"] == printed["message_sid"]


# ---- inspection and control --------------------------------------------------------------

async def test_disabled_callbacks_post_nothing_while_the_status_still_moves_on(
    twilio, receiver, eventually, sim_http
):
    status, config = await sim_http.post("/sim/config", {"callbacks_enabled": False, "callback_delay_s": 0.01})
    assert status == 200 and config["callbacks_enabled"] is False and "auth_token" not in config

    sent = await send(twilio, receiver)

    async def delivered():
        [message] = (await sim_http.get("/sim/messages"))["messages"]
        return message["status"] == "delivered" and message
    message = await eventually(delivered)
    assert message["sid"] == sent.sid and message["statuses"] == ["sent", "delivered"]
    assert receiver.received == []
    assert (await sim_http.get("/sim/callbacks"))["callbacks"] == []


async def test_config_refuses_unknown_or_malformed_settings(sim_http):
    assert (await sim_http.post("/sim/config", {"auth_token": "x"}))[0] == 400
    assert (await sim_http.post("/sim/config", {"callback_delay_s": -1}))[0] == 400
    assert (await sim_http.post("/sim/config", ["not", "an", "object"]))[0] == 400


async def test_reset_forgets_messages_and_per_number_tries(twilio, receiver, sim_http):
    from shared.twilio import TwilioNotReceived

    with pytest.raises(TwilioNotReceived):
        await send(twilio, receiver, to="+14155550600")
    await twilio.lookup_line_type(LEAD)

    status, _ = await sim_http.post("/sim/reset")

    assert status == 200
    assert (await sim_http.get("/sim/messages")) == {"messages": [], "attempts": []}
    assert (await sim_http.get("/sim/lookups"))["lookups"] == []
    with pytest.raises(TwilioNotReceived):  # the number's "first try" is first again
        await send(twilio, receiver, to="+14155550600")


async def test_counters_count_creates_refusals_lookups_and_lists(twilio, receiver, sim_http):
    await send(twilio, receiver)
    with pytest.raises(TwilioPermanent):
        await send(twilio, receiver, to="+14155550001")
    await twilio.lookup_line_type(LEAD)
    await twilio.list_messages(to=LEAD, from_=FIRM_NUMBER)

    counters = await sim_http.get("/sim/counters")

    assert (counters["create_attempts"], counters["messages_created"], counters["create_refused"]) == (2, 1, 1)
    assert (counters["lookups"], counters["list_requests"]) == (1, 1)


async def test_messages_inspection_reports_encoding_segments_and_the_refused_attempts(twilio, receiver, sim_http):
    await send(twilio, receiver, body="Tickets: 10€ " + "\U0001F389" * 40)
    with pytest.raises(TwilioPermanent):
        await send(twilio, receiver, to="+14155550350")

    seen = await sim_http.get("/sim/messages")

    [message] = seen["messages"]
    assert (message["encoding"], message["num_segments"], message["scenario"]) == ("UCS-2", "2", "default")
    assert [(a["to"], a["outcome"], a["error_code"]) for a in seen["attempts"]] == [
        (LEAD, "created", None), ("+14155550350", "refused", 21610),
    ]


# ---- Twilio's REST surface, raw ----------------------------------------------------------

async def test_message_list_pages_newest_first_through_next_page_uri(twilio, receiver, sim_url, sim_config):
    for i in range(5):
        await send(twilio, receiver, body=f"note {i}")
    auth = {"Authorization": aiohttp.encode_basic_auth(sim_config.account_sid, sim_config.auth_token)}
    uri = f"/2010-04-01/Accounts/{sim_config.account_sid}/Messages.json?To=%2B14155554321&From=%2B14155559000&PageSize=2"

    bodies, pages = [], 0
    async with aiohttp.ClientSession() as session:
        while uri:
            async with session.get(sim_url + uri, headers=auth) as response:
                assert response.status == 200
                page = await response.json()
            bodies += [m["body"] for m in page["messages"]]
            uri, pages = page["next_page_uri"], pages + 1

    assert bodies == [f"note {i}" for i in (4, 3, 2, 1, 0)]
    assert pages == 3


async def test_create_without_a_body_is_refused_with_twilio_s_error_shape(sim_url, sim_config):
    auth = {"Authorization": aiohttp.encode_basic_auth(sim_config.account_sid, sim_config.auth_token)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim_url}/2010-04-01/Accounts/{sim_config.account_sid}/Messages.json",
                                data={"To": LEAD, "From": FIRM_NUMBER}, headers=auth) as response:
            status, body = response.status, await response.json()

    assert status == 400
    assert body == {"code": 21602, "message": "Message body is required.",
                    "more_info": "https://www.twilio.com/docs/errors/21602", "status": 400}


async def test_a_request_for_another_account_is_not_found(sim_url, sim_config):
    auth = {"Authorization": aiohttp.encode_basic_auth(sim_config.account_sid, sim_config.auth_token)}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim_url}/2010-04-01/Accounts/AC{'9' * 32}/Messages.json", headers=auth) as response:
            assert response.status == 404
            assert (await response.json())["code"] == 20404


# ---- configuration -----------------------------------------------------------------------

def test_sim_config_from_settings_uses_the_project_s_credentials_or_defaults():
    configured = Settings(twilio_account_sid="AC" + "2" * 32, twilio_auth_token="tok",
                          public_base_url="http://web:8080/")
    assert SimConfig.from_settings(configured).account_sid == "AC" + "2" * 32
    assert SimConfig.from_settings(configured).auth_token == "tok"
    assert SimConfig.from_settings(configured).public_base_url == "http://web:8080"

    bare = SimConfig.from_settings(Settings())
    assert bare.account_sid.startswith("AC") and len(bare.account_sid) == 34
    assert bare.auth_token and bare.callbacks_enabled and bare.callback_delay_s <= 1.0
    assert bare.late_delay_s == 2.0
    assert DEFAULT_PORT == 8081


@pytest.mark.parametrize(
    ("to", "name"),
    [("+14155550000", "default"), ("+14155550001", "landline"), ("+14155550199", "filtered"),
     ("+14155550200", "unreachable"), ("+14155550300", "unsubscribed"), ("+14155550499", "invalid"),
     ("+14155550500", "server_error_twice"), ("+14155550699", "rate_limited_once"),
     ("+14155550700", "late"), ("+14155550899", "voip"), ("+14155550900", "created_but_500_once"),
     ("+14155551000", "default"), ("12", "default")],
)
def test_scenarios_are_chosen_by_the_last_four_digits(to, name):
    assert scenario_for(to).name == name


async def test_inbound_sends_advanced_opt_outs_opt_out_type_when_asked(sim_http, receiver, sim_config):
    status, _ = await sim_http.post("/sim/inbound", {"from": LEAD, "to": FIRM_NUMBER, "body": "Arrêt",
                                                     "opt_out_type": "STOP"})
    assert status == 200
    status, refused = await sim_http.post("/sim/inbound", {"from": LEAD, "to": FIRM_NUMBER, "body": "x",
                                                           "opt_out_type": "MAYBE"})
    assert status == 400 and "opt_out_type" in refused["error"]

    env = {**os.environ, "TWILIO_AUTH_TOKEN": sim_config.auth_token,
           "TWILIO_ACCOUNT_SID": sim_config.account_sid, "PUBLIC_BASE_URL": receiver.base_url,
           "LOG_FORMAT": "json"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from shared.cli import main; sys.exit(main())",
        "twilio-sim", "inbound", "--from", LEAD, "--to", FIRM_NUMBER, "--body", "Oui", "--opt-out-type", "START",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    texts = receiver.of_kind("/twilio/inbound")
    assert [(t.params["Body"], t.params["OptOutType"]) for t in texts] == [("Arrêt", "STOP"), ("Oui", "START")]
    assert all(t.valid for t in texts)
