"""End to end: the CRM hook on the real web app, a real `leadsms worker` process on Redis,
and the Twilio simulator answering Lookup through the real SDK."""

from __future__ import annotations

import asyncio
import time

import pytest

from intake import service
from intake.sweeps import requeue_pending_leads
from intake.validation import LeadInput
from tests.intake.helpers import get_lead, post_lead, settled, sim_lookups

pytestmark = pytest.mark.e2e


async def test_a_mobile_signup_is_valid_and_mobile_within_two_seconds(ready_worker, http, firm, sim):
    started = time.monotonic()
    status, posted = await post_lead(http, firm, phone="(212) 555-1234")
    assert status == 202

    lead = await settled(http, firm, posted["lead_id"], timeout=2.0)

    assert time.monotonic() - started < 2.0
    assert (lead["phone_status"], lead["phone"], lead["line_type"]) == ("valid", "+12125551234", "mobile")
    assert (lead["sendable"], lead["code"], lead["notice"]) == (True, None, None)


async def test_a_landline_signup_ends_landline_and_not_sendable(ready_worker, http, firm):
    _, posted = await post_lead(http, firm, phone="212-555-0042")

    lead = await settled(http, firm, posted["lead_id"])

    assert (lead["phone_status"], lead["line_type"], lead["sendable"], lead["code"]) == (
        "valid", "landline", False, "landline")
    assert lead["notice"] == {"level": "warning", "code": "landline",
                              "text": "This number is a landline and can't receive SMS messages"}


@pytest.mark.parametrize(
    ("phone", "status", "reason", "code"),
    [
        (None, "missing", None, "no_phone"),
        ("", "missing", None, "no_phone"),
        ("ask at the desk", "invalid", "unparseable", "invalid_phone"),
        ("555-01", "invalid", "too_short", "invalid_phone"),
        ("+1 212 555 01421234", "invalid", "too_long", "invalid_phone"),
        ("(123) 456-7891", "invalid", "not_a_valid_number", "invalid_phone"),
        ("(999) 999-9999", "invalid", "all_same_digit", "invalid_phone"),
        ("123-456-7890", "invalid", "sequential", "invalid_phone"),
        ("(212) 555-0442", "invalid", "lookup_invalid", "invalid_phone"),
    ],
)
async def test_each_invalid_class_lands_with_its_reason(ready_worker, http, firm, phone, status, reason, code):
    _, posted = await post_lead(http, firm, phone=phone)

    lead = await settled(http, firm, posted["lead_id"])

    assert (lead["phone_status"], lead["phone_error"], lead["sendable"], lead["code"]) == (status, reason, False, code)


FORMATS = [
    "(212) 555-0142", "+1 212-555-0142", "2125550142", "212.555.0142", "212-555-0142", "1-212-555-0142",
    "+12125550142", "(212)555-0142", "212 555 0142", "1 (212) 555-0142", " 212 555 0142 ", "+1 (212) 555 0142",
    "1.212.555.0142", "+1.212.555.0142", "12125550142", "(212) 5550142", "212555-0142", "+1-212-555-0142",
    "011 1 212 555 0142", "212/555-0142",
]


async def test_twenty_signups_of_one_person_across_two_firms_make_one_lookup(ready_worker, http, make_firm, sim):
    firms = [await make_firm(), await make_firm()]
    posts = await asyncio.gather(*(post_lead(http, firms[i % 2], phone=phone) for i, phone in enumerate(FORMATS)))
    assert {status for status, _ in posts} == {202}

    leads = await asyncio.gather(*(settled(http, firms[i % 2], body["lead_id"]) for i, (_, body) in enumerate(posts)))

    assert {(lead["phone"], lead["phone_status"], lead["line_type"]) for lead in leads} == {
        ("+12125550142", "valid", "mobile")}
    assert len(await sim_lookups(sim, "+12125550142")) == 1


async def test_a_reposted_hook_returns_the_same_lead_and_starts_nothing(ready_worker, http, firm, sim, pool, enqueued):
    _, first = await post_lead(http, firm, external_id="crm-repost", phone="(212) 555-1235")
    await settled(http, firm, first["lead_id"])
    before = await pool.fetchrow("SELECT * FROM leads WHERE id = $1", first["lead_id"])

    status, again = await post_lead(http, firm, external_id="crm-repost", phone="(212) 555-1235")

    assert (status, again["lead_id"], again["phone_status"], again["duplicate"]) == (202, first["lead_id"], "valid", True)
    assert enqueued.of("validate_lead") == [(first["lead_id"],)]
    await asyncio.sleep(0.3)  # give a stray job time to show itself at the simulator
    assert await pool.fetchrow("SELECT * FROM leads WHERE id = $1", first["lead_id"]) == before
    assert len(await sim_lookups(sim, "+12125551235")) == 1


async def test_a_lead_whose_job_was_lost_is_validated_after_the_sweep(ready_worker, http, firm, deps):
    lost = await service.accept_lead(deps.pool, firm.id, LeadInput("crm-lost", "Lost", "", "", "(212) 555-1237", None))
    await deps.pool.execute("UPDATE leads SET created_at = now() - interval '1 minute' WHERE id = $1", lost.lead_id)

    assert await requeue_pending_leads(deps) == 1

    lead = await settled(http, firm, lost.lead_id)
    assert (lead["phone_status"], lead["line_type"]) == ("valid", "mobile")


@pytest.mark.parametrize("by_database", [True, False])
async def test_the_intake_benchmark_measures_post_to_line_type(ready_worker, web, firm, settings, by_database):
    from devtools.bench.intake import bench_intake

    report = await bench_intake(web, firm["api_key"], rate=20, count=10, seed=7,
                                dsn=settings.database_url if by_database else None)

    assert report["statuses"] == {202: 10} and report["line_type_known"] == 10
    figures = report["post_to_line_type_s"]
    assert 0 < figures["p50"] <= figures["p95"] <= figures["max"] < 5
