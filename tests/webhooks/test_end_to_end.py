"""Through the real send path: the portal sends, a worker calls the simulator, the
simulator's signed callbacks come back to /twilio/status, a worker applies them."""

from conversations.sendable import NOTICES
from tests.support import wait_for
from tests.webhooks.support import flag_events, open_thread, post_message

DELIVERED_PHONE = "+16465552345"  # the simulator's default row: mobile, delivered
FILTERED_PHONE = "+16465550150"  # the simulator's 01xx row: undelivered, 30007


async def _shown(http, firm, message_id):
    async with http.get(f"/v1/messages/{message_id}", headers=firm.headers) as r:
        return await r.json()


async def _has_final_status(http, firm, message_id):
    return (await _shown(http, firm, message_id))["status"] in ("delivered", "undelivered")


async def test_a_portal_send_ends_delivered_through_the_simulators_callbacks(http, pool, firm, webhook_worker):
    conversation_id = await open_thread(http, pool, firm, DELIVERED_PHONE)
    status, sent = await post_message(http, firm, conversation_id, "Doors open at 6pm")
    assert status == 202

    async def delivered():
        shown = await _shown(http, firm, sent["id"])
        return shown if shown["status"] == "delivered" else None

    shown = await wait_for(delivered, timeout=15, what="the message to be delivered")
    assert (shown["twilio_status"], shown["error_code"]) == ("delivered", None)
    assert shown["twilio_sid"].startswith("SM")
    rows = await pool.fetch("SELECT twilio_status, outcome FROM twilio_inbox WHERE message_sid = $1 ORDER BY id",
                            shown["twilio_sid"])
    # the send stored `sent` with the sid already, so Twilio's `sent` only records its word
    assert [(r["twilio_status"], r["outcome"]) for r in rows] == [
        ("sent", "recorded"), ("delivered", "status:delivered")]


async def test_three_filtered_sends_block_the_phone_for_that_firm_and_the_next_send_is_refused(
        http, pool, make_firm, webhook_worker):
    firm, other = await make_firm(), await make_firm()
    conversation_id = await open_thread(http, pool, firm, FILTERED_PHONE)
    ids = []
    for n in range(3):
        status, sent = await post_message(http, firm, conversation_id, f"Reminder number {n + 1}")
        assert status == 202
        ids.append(sent["id"])

    async def all_undelivered():
        shown = [await _shown(http, firm, i) for i in ids]
        return shown if all(s["status"] == "undelivered" for s in shown) else None

    for shown in await wait_for(all_undelivered, timeout=20, what="three undelivered messages"):
        assert (shown["error_code"], shown["error_message"]) == (30007, "Message filtered")
    await wait_for(lambda: pool.fetchval("SELECT blocked FROM phone_flags WHERE firm_id = $1", firm.id),
                   timeout=5, what="the block")
    status, refused = await post_message(http, firm, conversation_id, "One more try")
    assert (status, refused["code"], refused["error"]) == (409, "blocked", NOTICES["blocked"].text)
    assert (await flag_events(pool, firm.id, FILTERED_PHONE))[-1] == ("blocked", "auto")

    other_conversation = await open_thread(http, pool, other, FILTERED_PHONE, external_id="o1")
    status, sent = await post_message(http, other, other_conversation, "Hello from another firm")
    assert status == 202
    await wait_for(lambda: _has_final_status(http, other, sent["id"]), timeout=15, what="the other firm's send")
