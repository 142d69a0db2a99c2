"""A firm's numbers with history: sends record their sender, conversations keep theirs,
a stale send reconciles against the number it was claimed with, and texts to any number
the firm has had belong to it (the current owner of a moved number wins)."""

from __future__ import annotations

import aiohttp

from firms import service
from send_pipeline.sweeps import in_flight_limit_s, reconcile_stale_sends
from tests.firms.conftest import firm_cli, run_firm_cli
from tests.send_pipeline.conftest import add_lead, open_conversation, post_send, sim_view
from tests.support import wait_for

OLD, NEW = "+16465558001", "+16465558002"
LEAD_A, LEAD_B = "+12125554001", "+12125554002"


async def _message(pool, message_id: int):
    return await pool.fetchrow("SELECT status, twilio_sid, from_number FROM messages WHERE id = $1", message_id)


async def test_after_number_add_and_default_new_sends_use_the_new_number_and_a_stale_send_reconciles_on_the_old(
        worker, deps, broker, http, pool, sim, settings, make_firm):
    firm = await make_firm("Moving Seminars", OLD)
    conv_a = await open_conversation(http, firm, await add_lead(pool, firm.id, LEAD_A))
    # A send from before the change: claimed from OLD, at Twilio, and its worker died.
    status, stale, _ = await post_send(http, firm.user(), conv_a, "Doors open at 6")
    assert status == 202
    # Delivered: no callback of it is still coming that could store its sid again.
    await wait_for(lambda: pool.fetchval("SELECT status = 'delivered' FROM messages WHERE id = $1", stale["id"]),
                   what="delivered")
    assert (await _message(pool, stale["id"]))["from_number"] == OLD
    # As if the worker had died before storing Twilio's answer: claimed just long enough
    # ago that no call of the claim can still be in flight (Twilio created it within it).
    await pool.execute(
        "UPDATE messages SET status = 'sending', twilio_sid = NULL, claimed_at = now() - make_interval(secs => $2) "
        "WHERE id = $1", stale["id"], in_flight_limit_s(deps.settings) + 2)

    added = firm_cli(settings, "number", "add", "--firm", str(firm.id), "--number", NEW)
    assert added["numbers"] == [OLD, NEW] and added["default_number"] == OLD
    made = firm_cli(settings, "number", "default", "--firm", str(firm.id), "--number", NEW)
    assert made["default_number"] == NEW
    removed = firm_cli(settings, "number", "remove", "--firm", str(firm.id), "--number", OLD)
    assert removed["numbers"] == [NEW]

    assert await reconcile_stale_sends(deps) == {"adopted": 1}
    row = await _message(pool, stale["id"])
    assert row["status"] == "sent" and row["from_number"] == OLD
    assert len([m for m in (await sim_view(sim, LEAD_A))["messages"] if m["body"] == "Doors open at 6"]) == 1

    conv_b = await open_conversation(http, firm, await add_lead(pool, firm.id, LEAD_B))
    fresh = []
    for conv in (conv_a, conv_b):  # A's sticky OLD is no longer the firm's: both go from NEW
        status, body, _ = await post_send(http, firm.user(), conv, "See you tonight")
        assert status == 202
        fresh.append(body["id"])
    for message_id in fresh:
        await wait_for(lambda: pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", message_id), what="sent")
        assert (await _message(pool, message_id))["from_number"] == NEW
    at_sim = [m for m in (await sim_view(sim))["messages"] if m["body"] == "See you tonight"]
    assert sorted(m["from"] for m in at_sim) == [NEW, NEW]
    async with http.get(f"/v1/messages/{fresh[0]}", headers=firm.headers) as resp:
        assert (await resp.json())["from_number"] == NEW


async def test_a_conversation_keeps_its_number_while_the_firm_has_it(worker, http, pool, sim, settings, make_firm):
    firm = await make_firm("Sticky Seminars", OLD)
    conv = await open_conversation(http, firm, await add_lead(pool, firm.id, LEAD_A))
    status, first, _ = await post_send(http, firm.user(), conv, "First")
    await wait_for(lambda: pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", first["id"]), what="sent")
    await service.change_number(settings.database_url, firm.id, "add", NEW)
    await service.change_number(settings.database_url, firm.id, "default", NEW)
    status, second, _ = await post_send(http, firm.user(), conv, "Second")
    await wait_for(lambda: pool.fetchval("SELECT twilio_sid FROM messages WHERE id = $1", second["id"]), what="sent")
    assert (await _message(pool, second["id"]))["from_number"] == OLD


async def _text_us(sim: str, from_: str, to: str, body: str) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim}/sim/inbound", json={"from": from_, "to": to, "body": body}) as resp:
            return await resp.json()


async def test_a_stop_to_the_firms_old_number_opts_the_lead_out_for_the_firm(web, pool, sim, settings, make_firm):
    firm = await make_firm("Old Number Seminars", OLD)
    await service.change_number(settings.database_url, firm.id, "add", NEW)
    await service.change_number(settings.database_url, firm.id, "default", NEW)
    await service.change_number(settings.database_url, firm.id, "remove", OLD)
    answer = await _text_us(sim, LEAD_A, OLD, "STOP")
    assert answer["answer_status"] == 200
    flags = await pool.fetchrow("SELECT opted_out, opted_out_source FROM phone_flags WHERE firm_id = $1 AND phone_e164 = $2",
                                firm.id, LEAD_A)
    assert flags is not None and flags["opted_out"] and flags["opted_out_source"] == "keyword:stop"


async def test_a_text_to_a_number_that_moved_belongs_to_its_current_owner(web, pool, sim, settings, make_firm):
    first = await make_firm("First Owner", OLD)
    await service.change_number(settings.database_url, first.id, "add", NEW)
    await service.change_number(settings.database_url, first.id, "default", NEW)
    await service.change_number(settings.database_url, first.id, "remove", OLD)
    second = await make_firm("Second Owner", "+16465558003")
    await service.change_number(settings.database_url, second.id, "add", OLD)
    await _text_us(sim, LEAD_B, OLD, "STOP")
    owners = await pool.fetch("SELECT firm_id FROM phone_flags WHERE phone_e164 = $1 AND opted_out", LEAD_B)
    assert [r["firm_id"] for r in owners] == [second.id]


def test_number_cli_refuses_a_number_another_firm_owns_and_removing_the_default(settings, pool):
    created = firm_cli(settings, "add", "--name", "CLI Firm", "--number", "+16465558010")
    other = firm_cli(settings, "add", "--name", "Other Firm", "--number", "+16465558011")
    taken = run_firm_cli(settings, "number", "add", "--firm", str(created["firm_id"]), "--number", "+16465558011")
    assert taken.returncode == 1 and f"firm {other['firm_id']}" in taken.stderr and "Traceback" not in taken.stderr
    default = run_firm_cli(settings, "number", "remove", "--firm", str(created["firm_id"]), "--number", "+16465558010")
    assert default.returncode == 1 and "default" in default.stderr
