"""`leadsms firm delete`: every person of the firm erased, the firm row kept as a tombstone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from intake.offboarding import offboard_firm
from tests.consent.support import sim_inbound
from tests.intake.helpers import post_lead, settled
from tests.intake.test_erasure import sim_messages_of
from tests.intake.test_lead_lifecycle import open_conversation, send
from tests.support import ROOT, wait_for

import pytest

pytestmark = pytest.mark.e2e

# Tables that may keep a row of a deleted firm, and why: the tombstone, the hashed
# ledgers and suppressions, the erasure's own record, the number history, feed counters.
KEPT = {"firms", "consent_events", "phone_flag_events", "erasures", "erased_messages", "erased_suppressions",
        "firm_numbers", "event_counters", "event_prune_marks"}


async def firm_rows(pool, firm_id: int) -> dict[str, list[dict]]:
    tables = [r["table_name"] for r in await pool.fetch(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'firm_id'")]
    out = {}
    for table in tables:
        rows = [dict(r) for r in await pool.fetch(f'SELECT * FROM "{table}" WHERE firm_id = $1 ORDER BY 1', firm_id)]
        if rows:
            out[table] = rows
    return out


async def test_firm_delete_leaves_only_the_tombstone_and_hashed_ledgers(ready_worker, deliveries_worker, http, firm,
                                                                        make_firm, deps, pool, sim):
    other = await make_firm()
    async with http.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/crm", "events": ["*"]},
                         headers=firm.headers) as resp:
        assert resp.status == 201
    _, theirs = await post_lead(http, other, external_id="o-1", name="Olive Other", phone="(212) 555-4001")
    await settled(http, other, theirs["lead_id"])
    leads = []
    for n, phone in enumerate(("(212) 555-4001", "(212) 555-4002")):
        _, body = await post_lead(http, firm, external_id=f"f-{n}", name=f"Fern Person {n}", phone=phone)
        leads.append(body["lead_id"])
        await settled(http, firm, body["lead_id"])
    await post_lead(http, firm, external_id="f-none", name="No Phone", phone=None)
    for lead_id in leads:
        conv = await open_conversation(http, firm, lead_id)
        assert (await send(http, firm, conv["conversation_id"], "secret firm text"))[0] == 202
    await wait_for(lambda: pool.fetchval(
        "SELECT count(*) = 2 FROM messages WHERE firm_id = $1 AND twilio_sid IS NOT NULL", firm.id),
        timeout=15, what="the sends to reach Twilio")
    await sim_inbound(sim, **{"from": "+12125554002", "to": firm.number, "body": "STOP"})
    await wait_for(lambda: pool.fetchval("SELECT count(*) FROM consent_events WHERE firm_id = $1", firm.id),
                   timeout=10, what="the opt-out")
    await wait_for(lambda: pool.fetchval(
        "SELECT count(*) = 0 FROM twilio_inbox WHERE processed_at IS NULL"), timeout=10, what="the inbox to drain")
    await wait_for(lambda: pool.fetchval(
        "SELECT count(*) > 0 FROM webhook_deliveries WHERE firm_id = $1 AND event_type = 'consent.changed'", firm.id),
        timeout=15, what="the opt-out's webhook delivery row")
    before_other = await firm_rows(pool, other.id)

    summary = await offboard_firm(deps, firm.id)

    assert (summary["phones"], summary["twilio_records_left"]) == (2, 0)
    left = await firm_rows(pool, firm.id)
    assert set(left) <= KEPT, set(left) - KEPT
    tomb = dict(await pool.fetchrow("SELECT * FROM firms WHERE id = $1", firm.id))
    assert (tomb["api_key_sha256"], tomb["sms_number"], tomb["twilio_account_sid"]) == (None, None, None)
    assert tomb["deleted_at"] is not None
    assert all(r["removed_at"] is not None for r in left["firm_numbers"])
    assert [r["phone_e164"][:7] for r in left["consent_events"]] == ["erased:"]
    text = json.dumps(left, default=str)
    for secret in ("Fern Person", "secret firm text", "5554001", "5554002", "No Phone"):
        assert secret not in text
    assert await sim_messages_of(sim, "+12125554001", "+12125554002") == []
    assert await firm_rows(pool, other.id) == before_other
    # (the key's digest is gone, so a web process refuses it once its 30 s auth cache lapses)
    # The CLI refuses without --confirm.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": deps.settings.database_url}
    proc = subprocess.run([sys.executable, "-m", "shared.cli", "firm", "delete", "--firm", str(other.id)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--confirm" in proc.stderr
    assert await firm_rows(pool, other.id) == before_other
