"""Twilio's permanent refusals on send, and what each says about the phone."""

from tests.send_pipeline.conftest import post_send
from tests.send_pipeline.test_sending import _has_status
from tests.support import wait_for


async def test_twilio_21610_opts_the_phone_out_and_fails_the_message(worker, http, firm, thread, pool, sim):
    phone = "+12125550321"
    conv = await thread(phone)
    _, body, _ = await post_send(http, firm.user("u1"), conv, "Hi")
    await wait_for(lambda: _has_status(pool, body["id"], "failed"), what="failed")
    row = await pool.fetchrow("SELECT error_code, error_message FROM messages WHERE id = $1", body["id"])
    assert row["error_code"] == 21610 and row["error_message"]
    assert await pool.fetchval("SELECT source FROM consent_events WHERE phone_e164 = $1", phone) == "twilio_21610"
    status, refused, _ = await post_send(http, firm.user("u1"), conv, "Hi again")
    assert (status, refused["code"]) == (409, "opted_out")


async def test_twilio_21614_records_a_landline_and_fails_the_message(worker, http, firm, thread, pool, sim):
    phone = "+12125550042"
    conv = await thread(phone)
    _, body, _ = await post_send(http, firm.user("u1"), conv, "Hi")
    await wait_for(lambda: _has_status(pool, body["id"], "failed"), what="failed")
    assert await pool.fetchval("SELECT error_code FROM messages WHERE id = $1", body["id"]) == 21614
    status, refused, _ = await post_send(http, firm.user("u1"), conv, "Hi again")
    assert (status, refused["code"]) == (409, "landline")


async def test_twilio_21211_marks_the_phone_invalid_and_fails_the_message(worker, http, firm, thread, pool, sim):
    phone = "+12125550456"
    conv = await thread(phone)
    _, body, _ = await post_send(http, firm.user("u1"), conv, "Hi")
    await wait_for(lambda: _has_status(pool, body["id"], "failed"), what="failed")
    assert await pool.fetchval("SELECT error_code FROM messages WHERE id = $1", body["id"]) == 21211
    assert await pool.fetchval(
        "SELECT l.phone_status FROM leads l JOIN conversations c ON c.lead_id = l.id WHERE c.id = $1", conv) == "invalid"
    status, refused, _ = await post_send(http, firm.user("u1"), conv, "Hi again")
    assert (status, refused["code"]) == (409, "invalid_phone")
