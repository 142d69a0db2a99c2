"""schemathesis over docs/openapi.yaml against a real `leadsms web`: no 5xx, every
answer documented, every error `{"error", "code"}` (the spec's Error schema, checked by
response_schema_conformance), JSON where JSON is promised.

Also the forged-webhook battery of tests/security/forgeries.py, many times over with
fresh sids, against the same process: forged requests accepted must be 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.faults.conftest import record
from tests.faults.logscan import basic_credentials, scan
from tests.faults.sends import add_conversations, make_firm, post_sends, wait_settled
from tests.faults.stack import SID, connect, private_stack
from tests.security.forgeries import forgeries, genuine

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
MAX_EXAMPLES = int(os.environ.get("FAULTS_ST_EXAMPLES", "60"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
FORGERY_ROUNDS = 25


def schemathesis_command() -> list[str]:
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.fail("schemathesis is not installed: pip install -e '.[faults]'")
    return [str(st)]


def count_cases(ndjson: Path) -> tuple[int, int]:
    """(cases run, failures) from schemathesis' ndjson event stream."""
    cases = failures = 0
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        for name, body in event.items():
            if name == "ScenarioFinished":
                recorder = body.get("recorder", {})
                cases += len(recorder.get("cases", {}))
                for checks in recorder.get("checks", {}).values():
                    failures += sum(1 for c in checks if c.get("status") == "FAILURE")
    return cases, failures


@pytest.mark.faults
async def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(fault_dir):
    async with private_stack(fault_dir) as (stack, pg, rd):
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            convs = await add_conversations(conn, firm.id, ["+12125551111", "+12125552222"])
            stack.start_worker()
            stack.start_sweeper()
            posted = await post_sends(stack, firm, [(c, "Seed message") for c in convs.values()])
            # A reply waiting for review, so the review route has something to decide.
            first = min(convs.values())
            await conn.execute(
                """INSERT INTO phone_flags (firm_id, phone_e164, review_pending, review_message_id)
                   SELECT firm_id, phone_e164, true, $2 FROM conversations WHERE id = $1""", first, min(posted.accepted))
            report = fault_dir / "schemathesis.ndjson"
            args = [*schemathesis_command(), "run", str(SPEC), "--url", stack.web,
                    "-H", f"Authorization: Bearer {firm.key}", "--checks", CHECKS,
                    "--exclude-tag", "pages",  # the HTML pages, /metrics and the demo's routes: not the API
                    "--max-examples", str(MAX_EXAMPLES), "--seed", "20261129", "--workers", "1",
                    "--phases", "examples,coverage,fuzzing,stateful", "--suppress-health-check", "all",
                    "--request-timeout", "30", "--report", "ndjson", "--report-ndjson-path", str(report),
                    "--output-truncate", "true"]
            proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                        stderr=subprocess.STDOUT, cwd=fault_dir)
            out, _ = await asyncio.wait_for(proc.communicate(), 900)
            text = out.decode(errors="replace")
            (fault_dir / "schemathesis.out").write_text(text)
            cases, failures = count_cases(report)
            server_errors = await conn.fetchval("SELECT 0")  # the web log is checked below
            logs = stack.logs()
            unhandled = logs.count('"unhandled_error"')
            record("schemathesis", schemathesis_cases=cases, schemathesis_failures=failures,
                   unhandled_errors_logged=unhandled, exit_code=proc.returncode)
            assert cases > 0, text[-3000:]
            assert failures == 0 and proc.returncode == 0, text[-6000:]
            assert unhandled == 0 and server_errors == 0
            leaks = scan(logs, secrets={"auth token": stack.token, "api key": firm.key,
                                        "basic credentials": basic_credentials(SID, stack.token)}, bodies=[])
            assert leaks == [], leaks[:3]
        finally:
            await conn.close()


@pytest.mark.faults
async def test_forged_webhooks_are_never_accepted(fault_dir):
    async with private_stack(fault_dir) as (stack, pg, rd):
        firm = await make_firm(stack)
        conn = await connect(stack)
        try:
            lead = "+12125553333"
            conv = (await add_conversations(conn, firm.id, [lead]))[lead]
            stack.start_worker()
            posted = await post_sends(stack, firm, [(conv, "Before the forgeries")])
            (message_id,) = posted.accepted
            await wait_settled(conn, timeout=60, statuses=("queued", "sending"))
            await wait_settled(conn, timeout=30, statuses=("sent",), what="delivered")
            inbox_before = await conn.fetchval("SELECT count(*) FROM twilio_inbox")
            args = dict(public_base_url=stack.web, token=stack.token, account_sid=SID,
                        firm_number=firm.number, lead_phone=lead)
            sent = accepted = 0
            async with aiohttp.ClientSession(base_url=stack.web) as s:
                for _ in range(FORGERY_ROUNDS):
                    for f in forgeries(**args, message_id=message_id):
                        async with s.post(f.path, data=f.params, headers=f.headers) as resp:
                            sent += 1
                            accepted += resp.status < 400
                g = genuine(**args)
                async with s.post(g.path, data=g.params, headers=g.headers) as resp:
                    genuine_status = resp.status
            inbox_after = await conn.fetchval("SELECT count(*) FROM twilio_inbox")
            record("forged_webhooks", forged_sent=sent, forged_accepted=accepted, genuine_answer=genuine_status)
            assert accepted == 0
            assert genuine_status == 200 and inbox_after == inbox_before + 1
            assert await conn.fetchval("SELECT count(*) FROM consent_events") == 0
            assert await conn.fetchval("SELECT status FROM messages WHERE id = $1", message_id) == "delivered"
        finally:
            await conn.close()
