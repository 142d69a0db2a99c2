"""Firms on Twilio Messaging Services and subaccounts: what is sent, with which account,
and which account's signature a webhook must carry."""

from __future__ import annotations

import aiohttp

from devtools.twilio_sim.signing import SIGNATURE_HEADER, sign, status_params
from firms import service
from tests.conftest import TEST_SID, TEST_TOKEN, TEST_TOKEN_SECONDARY
from tests.firms.conftest import firm_cli, sim_accounts
from tests.send_pipeline.conftest import add_lead, open_conversation, post_send, sim_view
from tests.support import wait_for

SERVICE = "MG" + "5" * 32
POOL = ["+16465559101", "+16465559102"]
SUB_A, TOKEN_A = "AC" + "a" * 32, "token-of-subaccount-a"
SUB_B, TOKEN_B = "AC" + "b" * 32, "token-of-subaccount-b"
NUMBER_A, NUMBER_B = "+16465559201", "+16465559202"


async def _send(http, pool, firm, phone: str, body: str) -> int:
    conv = await open_conversation(http, firm, await add_lead(pool, firm.id, phone))
    status, message, _ = await post_send(http, firm.user(), conv, body)
    assert status == 202, message
    return message["id"]


async def _status(pool, message_id: int) -> str:
    return await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id)


async def test_a_messaging_service_firm_sends_with_the_service_and_records_the_number_twilio_chose(
        worker, http, pool, sim, settings, make_firm):
    firm = await make_firm("Service Seminars", "+16465559100")
    await sim_accounts(sim, sid=TEST_SID, auth_token=TEST_TOKEN, numbers=["+16465559100"],
                       messaging_services={SERVICE: POOL})
    assert firm_cli(settings, "set", "--firm", str(firm.id), "--messaging-service", SERVICE)["messaging_service_sid"] \
        == SERVICE
    message_id = await _send(http, pool, firm, "+12125555101", "Doors open at 6")
    number = await wait_for(lambda: pool.fetchval("SELECT from_number FROM messages WHERE id = $1", message_id),
                            what="the number Twilio chose")
    assert number in POOL
    attempt = (await sim_view(sim, "+12125555101"))["attempts"][0]
    assert attempt["messaging_service_sid"] == SERVICE and attempt["from"] == ""
    async with http.get(f"/v1/messages/{message_id}", headers=firm.headers) as resp:
        assert (await resp.json())["from_number"] == number


async def _two_subaccount_firms(http, pool, sim, settings, make_firm):
    a = await make_firm("Firm A", NUMBER_A)
    b = await make_firm("Firm B", NUMBER_B)
    await sim_accounts(sim, sid=SUB_A, auth_token=TOKEN_A, numbers=[NUMBER_A])
    await sim_accounts(sim, sid=SUB_B, auth_token=TOKEN_B, numbers=[NUMBER_B])
    shown = firm_cli(settings, "set", "--firm", str(a.id), "--account-sid", SUB_A, "--auth-token-stdin",
                     stdin=TOKEN_A + "\n")
    assert shown["twilio_account_sid"] == SUB_A and TOKEN_A not in str(shown)
    await service.set_identity(settings.database_url, b.id, credentials_key=settings.credentials_key,
                               account_sid=SUB_B, auth_token=TOKEN_B)
    stored = await pool.fetchval("SELECT twilio_auth_token_enc FROM firms WHERE id = $1", a.id)
    assert TOKEN_A not in stored  # encrypted at rest
    return a, b


async def _post_status(settings, message_id: int, params: dict, token: str) -> int:
    url = f"{settings.public_base_url}/twilio/status?m={message_id}"
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=params, headers={SIGNATURE_HEADER: sign(token, url, params)}) as resp:
            return resp.status


async def test_two_subaccount_firms_get_callbacks_checked_with_their_own_token_and_a_cross_signed_one_is_refused(
        worker, http, pool, sim, settings, make_firm):
    a, b = await _two_subaccount_firms(http, pool, sim, settings, make_firm)
    msg_a = await _send(http, pool, a, "+12125555201", "Hello from A")
    msg_b = await _send(http, pool, b, "+12125555202", "Hello from B")
    for message_id in (msg_a, msg_b):
        await wait_for(lambda: _status(pool, message_id), what="delivered", timeout=15)
        await wait_for(lambda: pool.fetchval("SELECT status = 'delivered' FROM messages WHERE id = $1", message_id),
                       what="delivered", timeout=15)
    created = {m["to"]: m["account_sid"] for m in (await sim_view(sim))["messages"]}
    assert created == {"+12125555201": SUB_A, "+12125555202": SUB_B}

    sid_a = await pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", msg_a)
    forged = status_params(account_sid=SUB_B, sid=sid_a, to="+12125555201", from_=NUMBER_A,
                           status="undelivered", error_code=30007)
    assert await _post_status(settings, msg_a, forged, TOKEN_B) == 403  # B's account, A's message
    claimed_a = {**forged, "AccountSid": SUB_A}
    assert await _post_status(settings, msg_a, claimed_a, TOKEN_B) == 403  # names A, signed by B
    main = {**forged, "AccountSid": TEST_SID}
    assert await _post_status(settings, msg_a, main, TEST_TOKEN) == 403  # the main account is not A's
    assert await _status(pool, msg_a) == "delivered"
    assert await pool.fetchval("SELECT count(*) FROM twilio_inbox WHERE twilio_status = 'undelivered'") == 0


async def test_the_main_accounts_secondary_token_is_accepted_on_webhooks(worker, http, pool, sim, settings, make_firm):
    firm = await make_firm("Main Account Firm", "+16465559301")
    message_id = await _send(http, pool, firm, "+12125555301", "Hello")
    sid = await wait_for(lambda: pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", message_id), what="sid")
    params = status_params(account_sid=TEST_SID, sid=sid, to="+12125555301", from_="+16465559301", status="read")
    assert await _post_status(settings, message_id, params, TEST_TOKEN_SECONDARY) == 204


async def test_an_auth_failure_on_one_subaccount_pauses_only_that_firm_and_the_probe_restarts_it(
        worker, sweeping, http, pool, sim, settings, make_firm):
    a, b = await _two_subaccount_firms(http, pool, sim, settings, make_firm)
    await sim_accounts(sim, sid=SUB_B, auth_token="a-token-twilio-revoked", numbers=[NUMBER_B])  # B's token now fails
    msg_b = await _send(http, pool, b, "+12125555402", "Hello from B")
    await wait_for(lambda: pool.fetchval("SELECT code FROM twilio_account_pauses WHERE account_sid = $1", SUB_B),
                   what="B's account paused")
    msg_a = await _send(http, pool, a, "+12125555401", "Hello from A")
    await wait_for(lambda: pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", msg_a), what="A sent")
    assert await _status(pool, msg_b) == "queued"
    assert await pool.fetchval("SELECT count(*) FROM twilio_account_pauses") == 1
    assert await pool.fetchval("SELECT paused_at FROM firms WHERE id = $1", a.id) is None

    await sim_accounts(sim, sid=SUB_B, auth_token=TOKEN_B, numbers=[NUMBER_B])  # Twilio accepts B again
    await wait_for(lambda: pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", msg_b), timeout=20,
                   what="B's message sent after the probe")
    assert await pool.fetchval("SELECT count(*) FROM twilio_account_pauses") == 0
    assert len((await sim_view(sim, "+12125555402"))["messages"]) == 1
