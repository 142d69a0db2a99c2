"""An account-level Twilio error pauses sending instead of failing every queued message
(firms/pauses.py): a sender error pauses the firm until `leadsms firm resume`; 20003
pauses the account until the sweeper's probe succeeds."""

from __future__ import annotations

import json

from ops.metrics import render_metrics
from ops.page import ops_snapshot
from tests.firms.conftest import firm_cli, sim_accounts
from tests.send_pipeline.conftest import add_lead, open_conversation, post_send, sim_view
from tests.support import wait_for
from tests.conftest import TEST_SID, TEST_TOKEN

LEADS = ("+12125553101", "+12125553102", "+12125553103")


async def _statuses(pool, firm_id: int) -> list[str]:
    rows = await pool.fetch("SELECT status FROM messages WHERE firm_id = $1 ORDER BY id", firm_id)
    return [r["status"] for r in rows]


async def test_a_from_number_twilio_refuses_pauses_the_firm_and_its_messages_stay_queued(
        worker, sweeping, deps, broker, http, pool, sim, settings, make_firm, worker_pool):
    firm = await make_firm("Paused Seminars", "+16465557001")
    # The main account owns another number only: Twilio answers 21606 for the firm's.
    await sim_accounts(sim, sid=TEST_SID, auth_token=TEST_TOKEN, numbers=["+16465557999"])
    for phone in LEADS:
        conv = await open_conversation(http, firm, await add_lead(pool, firm.id, phone))
        status, body, _ = await post_send(http, firm.user(), conv, f"Hello {phone}")
        assert status == 202, body

    await wait_for(lambda: pool.fetchval("SELECT paused_at IS NOT NULL FROM firms WHERE id = $1", firm.id),
                   what="the firm paused")
    await wait_for(lambda: _all_queued(pool, firm.id), what="every message back to queued")
    assert await _statuses(pool, firm.id) == ["queued"] * 3  # none failed
    assert await pool.fetchval("SELECT paused_code FROM firms WHERE id = $1", firm.id) == 21606
    created = [a for a in (await sim_view(sim))["attempts"] if a["outcome"] != "refused"]
    assert created == []

    metrics_text = await render_metrics(deps, broker)
    assert 'leadsms_sending_paused{code="21606",scope="firm"} 1' in metrics_text
    snapshot = await ops_snapshot(deps, broker)
    paused = [p for p in snapshot["paused"] if p["firm_id"] == firm.id]
    assert paused and paused[0]["scope"] == "firm" and "21606" in paused[0]["reason"]
    logs = "".join(p.read_text() for p in worker_pool.log_dir.glob("worker-*.log"))
    assert any(json.loads(line).get("event") == "firm_sending_paused" and json.loads(line).get("level") == "critical"
               for line in logs.splitlines() if line.startswith("{") and "firm_sending_paused" in line)

    # Someone fixes the number at Twilio and resumes the firm: the messages go, once each.
    await sim_accounts(sim, sid=TEST_SID, auth_token=TEST_TOKEN, numbers=["+16465557001"])
    assert firm_cli(settings, "resume", "--firm", str(firm.id)) == {"firm_id": firm.id, "resumed": True}
    await wait_for(lambda: _all_sent(pool, firm.id), timeout=20, what="every message sent after resume")
    sent = (await sim_view(sim))["messages"]
    assert sorted(m["to"] for m in sent) == sorted(LEADS)


async def _all_queued(pool, firm_id: int) -> bool:
    statuses = await _statuses(pool, firm_id)
    return len(statuses) == 3 and all(s == "queued" for s in statuses)


async def _all_sent(pool, firm_id: int) -> bool:
    statuses = await _statuses(pool, firm_id)
    return len(statuses) == 3 and all(s in ("sent", "delivered") for s in statuses)
