"""Only requests signed with our auth token, for our public URL, get into the inbox.

Every forgery of tests/security/forgeries.py is refused 403 and changes nothing: no inbox
row, no consent change, the message untouched. A genuine request in the same test is
accepted, so the refusals are not an accident of a broken setup.
"""

from __future__ import annotations

import aiohttp

from tests.security.forgeries import forgeries, genuine
from tests.security.support import add_conversation, add_lead, add_message, error_of

LEAD = "+12125550180"


async def post(http: aiohttp.ClientSession, forgery) -> aiohttp.ClientResponse:
    return await http.post(forgery.path, data=forgery.params, headers=forgery.headers)


async def test_every_forged_or_unsigned_webhook_is_refused_403_and_changes_nothing(http, settings, pool, firm):
    lead = await add_lead(pool, firm.id, LEAD)
    conv = await add_conversation(pool, firm.id, lead, LEAD)
    message_id = await add_message(pool, firm.id, conv, "Seminar on Friday", status="sent")
    args = dict(public_base_url=settings.public_base_url, token=settings.twilio_auth_token,
                account_sid=settings.twilio_account_sid, firm_number=firm.number, lead_phone=LEAD)
    accepted = []
    for forgery in forgeries(**args, message_id=message_id):
        async with await post(http, forgery) as resp:
            if resp.status < 400:
                accepted.append(forgery.name)
                continue
            assert resp.status == 403, (forgery.name, resp.status)
            assert (await error_of(resp))["code"] == "bad_signature"
    assert accepted == []
    assert await pool.fetchval("SELECT count(*) FROM twilio_inbox") == 0
    assert await pool.fetchval("SELECT count(*) FROM consent_events") == 0
    assert await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id) == "sent"

    async with await post(http, genuine(**args)) as resp:
        assert resp.status == 200
    assert await pool.fetchval("SELECT count(*) FROM twilio_inbox") == 1


async def test_an_unsigned_request_is_refused_before_its_body_is_read(http):
    """No signature, no parsing: a big unsigned form is refused 403, not read then refused."""
    async with http.post("/twilio/inbound", data={"Body": "x" * 60_000}) as resp:
        assert resp.status == 403
