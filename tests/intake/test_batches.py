"""Intake in batches: signups accepted together share one validate_lead job, a batch is
judged as one lead at a time would be, and its lookups run together, each phone paid once."""

from __future__ import annotations

import asyncio

from intake import service
from intake.validation import LeadInput
from lookup import batch as lookup_batch
from lookup import service as lookup_service
from tests.intake.helpers import external_id, post_lead, sim_lookups


async def _store(pool, firm_id: int, phone: str | None) -> int:
    return (await service.accept_lead(pool, firm_id, LeadInput(external_id(), "Dana", "", "", phone, None))).lead_id


async def test_signups_posted_together_are_validated_by_fewer_jobs_that_name_each_lead_once(http, firm, enqueued):
    answers = await asyncio.gather(*(post_lead(http, firm, phone=f"(212) 555-{3100 + i}") for i in range(24)))
    assert [status for status, _ in answers] == [202] * 24

    jobs = enqueued.of("validate_lead")
    named = sorted(lead_id for args in jobs for lead_id in args)
    assert named == sorted(body["lead_id"] for _, body in answers)
    assert len(jobs) < 24


async def test_a_batch_is_judged_as_each_lead_alone_would_be_and_asks_one_lookup_job(deps, broker, make_firm,
                                                                                    enqueued):
    a, b = await make_firm(), await make_firm()
    cached = "+12125553201"
    await deps.pool.execute("INSERT INTO phone_lines (phone_e164, valid, line_type) VALUES ($1, true, 'mobile') "
                            "ON CONFLICT (phone_e164) DO UPDATE SET checked_at = now()", cached)
    leads = {
        "valid_a": await _store(deps.pool, a.id, "(212) 555-3202"),
        "same_phone_b": await _store(deps.pool, b.id, "212.555.3202"),
        "cached": await _store(deps.pool, b.id, "2125553201"),
        "missing": await _store(deps.pool, a.id, None),
        "invalid": await _store(deps.pool, a.id, "555-01"),
        "other": await _store(deps.pool, b.id, "(212) 555-3203"),
    }

    before = await deps.pool.fetchval("SELECT coalesce(max(id), 0) FROM events")
    verdicts = await service.validate_leads(deps, list(leads.values()))

    rows = {r["id"]: tuple(r[1:]) for r in await deps.pool.fetch(
        "SELECT id, phone_status, phone_e164, phone_error FROM leads WHERE id = ANY($1)", list(leads.values()))}
    assert rows[leads["valid_a"]] == rows[leads["same_phone_b"]] == ("valid", "+12125553202", None)
    assert rows[leads["cached"]] == ("valid", cached, None)
    assert rows[leads["missing"]] == ("missing", None, None)
    assert rows[leads["invalid"]] == ("invalid", None, "too_short")
    assert rows[leads["other"]] == ("valid", "+12125553203", None)
    # one job for the phones with no fresh line, each named once
    assert verdicts.lookups == ["+12125553202", "+12125553203"]
    assert enqueued.of("lookup_line_types") == [(["+12125553202", "+12125553203"],)]
    assert enqueued.of("lookup_line_type") == []
    # each firm's feed says so: one lead.updated per signup judged
    for firm, names in ((a, ("valid_a", "missing", "invalid")), (b, ("same_phone_b", "cached", "other"))):
        ids = await deps.pool.fetch("SELECT (data->>'lead_id')::bigint AS id FROM events "
                                    "WHERE firm_id = $1 AND type = 'lead.updated' AND id > $2", firm.id, before)
        assert sorted(r["id"] for r in ids) == sorted(leads[n] for n in names)

    # a repeated job changes nothing
    assert (await service.validate_leads(deps, list(leads.values()))).verdicts == verdicts.verdicts


async def test_a_lookup_batch_pays_once_per_phone_and_leaves_locked_and_cached_phones(deps, sim):
    phones = ["+12125553301", "+12125553302", "+12125553303", "+12125553304"]
    await lookup_service.lookup_line_type(deps, phones[0])  # cached already
    await deps.redis.set(lookup_service.lock_key(phones[1]), "someone-else", px=5000)

    done = await lookup_batch.lookup_line_types(deps, phones + [phones[2]], concurrency=2)

    assert (done.cached, done.elsewhere, sorted(done.made)) == ([phones[0]], [phones[1]], phones[2:])
    assert [len(await sim_lookups(sim, p)) for p in phones] == [1, 0, 1, 1]
    lines = await deps.pool.fetch("SELECT phone_e164, line_type FROM phone_lines WHERE phone_e164 = ANY($1)", phones)
    assert sorted(tuple(r) for r in lines) == [(phones[0], "mobile"), (phones[2], "mobile"), (phones[3], "mobile")]
    assert [await deps.redis.get(lookup_service.lock_key(p)) for p in phones] == [None, b"someone-else", None, None]

    again = await lookup_batch.lookup_line_types(deps, phones[2:])
    assert again.cached == phones[2:] and again.made == []
    assert [len(await sim_lookups(sim, p)) for p in phones[2:]] == [1, 1]
