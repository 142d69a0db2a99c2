"""validate_lead and the pending-lead sweep, called as plain functions on real PostgreSQL
and Redis (the worker runs the same functions; see test_with_worker.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from intake import queries, service
from intake.sweeps import requeue_pending_leads
from intake.validation import LeadInput
from conversations.queries import upsert_conversation
from tests.intake.helpers import external_id

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


async def store(pool, firm_id: int, phone: str | None, *, signed_up_at: datetime | None = None) -> int:
    lead = LeadInput(external_id(), "Dana", "", "", phone, signed_up_at)
    return (await service.accept_lead(pool, firm_id, lead)).lead_id


@pytest.mark.parametrize(
    ("raw", "status", "e164", "error"),
    [
        ("(212) 555-0152", "valid", "+12125550152", None),
        ("+1 212-555-0152", "valid", "+12125550152", None),
        ("212.555.0152", "valid", "+12125550152", None),
        (None, "missing", None, None),
        ("   ", "missing", None, None),
        ("call me", "invalid", None, "unparseable"),
        ("12345", "invalid", None, "too_short"),
        ("+1 212 555 01421234", "invalid", None, "too_long"),
        ("(123) 456-7891", "invalid", None, "not_a_valid_number"),
        ("(555) 555-5555", "invalid", None, "all_same_digit"),
        ("0000000000", "invalid", None, "all_same_digit"),
        ("1234567890", "invalid", None, "sequential"),
        ("9876543210", "invalid", None, "sequential"),
    ],
)
async def test_validate_lead_records_each_class_with_its_reason(deps, broker, firm, raw, status, e164, error):
    lead_id = await store(deps.pool, firm.id, raw)

    verdict = await service.validate_lead(deps, lead_id)

    row = await deps.pool.fetchrow("SELECT phone_status, phone_e164, phone_error FROM leads WHERE id = $1", lead_id)
    assert tuple(row) == (status, e164, error)
    assert (verdict.status, verdict.phone_e164, verdict.error) == (status, e164, error)


async def test_a_valid_phone_without_a_cached_line_goes_to_lookup_and_a_fresh_one_does_not(deps, broker, firm, enqueued):
    first = await store(deps.pool, firm.id, "(212) 555-0177")
    assert (await service.validate_lead(deps, first)).lookup_requested
    assert enqueued.of("lookup_line_type") == [("+12125550177",)]

    await deps.pool.execute("INSERT INTO phone_lines (phone_e164, valid, line_type) VALUES ('+12125550177', true, 'mobile') "
                            "ON CONFLICT (phone_e164) DO UPDATE SET checked_at = now()")  # a worker may have been first
    second = await store(deps.pool, firm.id, "2125550177")
    assert not (await service.validate_lead(deps, second)).lookup_requested
    assert len(enqueued.of("lookup_line_type")) == 1


async def test_a_stale_cached_line_is_looked_up_again(deps, broker, firm, enqueued):
    ttl = deps.settings.lookup_ttl_days
    await deps.pool.execute(
        "INSERT INTO phone_lines (phone_e164, valid, line_type, checked_at) "
        "VALUES ('+12125550178', true, 'mobile', now() - make_interval(days => $1 + 1))", ttl)
    lead_id = await store(deps.pool, firm.id, "(212) 555-0178")

    assert (await service.validate_lead(deps, lead_id)).lookup_requested
    assert enqueued.of("lookup_line_type") == [("+12125550178",)]


async def test_a_phone_lookup_already_found_invalid_makes_the_new_signup_invalid(deps, broker, firm, enqueued):
    await deps.pool.execute("INSERT INTO phone_lines (phone_e164, valid) VALUES ('+12125550442', false)")
    lead_id = await store(deps.pool, firm.id, "(212) 555-0442")

    verdict = await service.validate_lead(deps, lead_id)

    assert (verdict.status, verdict.error, verdict.lookup_requested) == ("invalid", "lookup_invalid", False)
    row = await deps.pool.fetchrow("SELECT phone_status, phone_e164, phone_error FROM leads WHERE id = $1", lead_id)
    assert tuple(row) == ("invalid", "+12125550442", "lookup_invalid")
    assert enqueued.of("lookup_line_type") == []


async def test_a_repeated_job_changes_nothing(deps, broker, firm):
    lead_id = await store(deps.pool, firm.id, "(212) 555-0179")
    await service.validate_lead(deps, lead_id)
    before = await deps.pool.fetchrow("SELECT * FROM leads WHERE id = $1", lead_id)

    again = await service.validate_lead(deps, lead_id)

    assert again.status == "valid"
    assert await deps.pool.fetchrow("SELECT * FROM leads WHERE id = $1", lead_id) == before
    assert await service.validate_lead(deps, 987654) is None


async def test_the_conversation_follows_the_newest_signup_by_signed_up_at(deps, broker, firm, make_firm):
    pool = deps.pool
    old = await store(pool, firm.id, "(212) 555-0180", signed_up_at=T0)
    await service.validate_lead(deps, old)
    async with pool.acquire() as conn:
        conv_id, _ = await upsert_conversation(conn, firm.id, "+12125550180")
    assert await pool.fetchval("SELECT lead_id FROM conversations WHERE id = $1", conv_id) == old

    newer = await store(pool, firm.id, "212-555-0180", signed_up_at=T0 + timedelta(days=3))
    await service.validate_lead(deps, newer)
    assert await pool.fetchval("SELECT lead_id FROM conversations WHERE id = $1", conv_id) == newer

    # an older signup arriving late does not take the conversation back
    late = await store(pool, firm.id, "+1 212 555 0180", signed_up_at=T0 + timedelta(days=1))
    await service.validate_lead(deps, late)
    assert await pool.fetchval("SELECT lead_id FROM conversations WHERE id = $1", conv_id) == newer

    # another firm's signup of the same phone leaves this firm's conversation alone
    other = await make_firm()
    theirs = await store(pool, other.id, "(212) 555-0180", signed_up_at=T0 + timedelta(days=9))
    await service.validate_lead(deps, theirs)
    assert await pool.fetchval("SELECT lead_id FROM conversations WHERE id = $1", conv_id) == newer


async def test_the_sweep_reenqueues_stale_pending_leads(deps, broker, firm, enqueued):
    stale = await store(deps.pool, firm.id, "(212) 555-0181")
    await store(deps.pool, firm.id, "(212) 555-0182")  # pending, but not for long yet
    done = await store(deps.pool, firm.id, "(212) 555-0183")
    await service.validate_lead(deps, done)
    await deps.pool.execute("UPDATE leads SET created_at = now() - interval '1 hour' WHERE id IN ($1, $2)", stale, done)

    assert await requeue_pending_leads(deps) == 1
    assert enqueued.of("validate_lead") == [(stale,)]


async def test_a_stale_lead_is_picked_once_per_stale_period(deps, firm):
    stale = await store(deps.pool, firm.id, "(212) 555-0184")
    await deps.pool.execute("UPDATE leads SET created_at = now() - interval '1 hour' WHERE id = $1", stale)
    period = deps.settings.stale_after_s

    assert await queries.stale_pending_leads(deps.pool, period, 100) == [stale]
    assert await queries.stale_pending_leads(deps.pool, period, 100) == []  # not again within the period
    await deps.pool.execute("UPDATE leads SET requeued_at = now() - interval '1 hour' WHERE id = $1", stale)
    assert await queries.stale_pending_leads(deps.pool, period, 100) == [stale]


async def test_a_validation_racing_a_phone_change_neither_deadlocks_nor_writes_the_old_phone(deps, broker, firm):
    """The CRM changes a pending lead's phone while a worker is judging the old one. The
    update holds the lead, then the old phone's conversation; the validation must take them
    in the same order (else PostgreSQL breaks a deadlock), and must not record the old
    phone's verdict on the lead that now waits for its new one."""
    import asyncio

    lead_id = await store(deps.pool, firm.id, "(212) 555-0191")
    async with deps.pool.acquire() as conn:
        await upsert_conversation(conn, firm.id, "+12125550191")
    update = await deps.pool.acquire()
    try:
        async with update.transaction():
            await update.execute("SELECT 1 FROM leads WHERE id = $1 FOR UPDATE", lead_id)
            await update.execute("UPDATE leads SET phone_raw = '(212) 555-0192', phone_status = 'pending' "
                                 "WHERE id = $1", lead_id)
            judging = asyncio.create_task(service.validate_lead(deps, lead_id))
            await asyncio.sleep(0.5)  # the validation is now waiting on a lock
            await update.execute("SELECT 1 FROM conversations WHERE firm_id = $1 AND phone_e164 = $2 FOR UPDATE",
                                 firm.id, "+12125550191")
        verdict = await asyncio.wait_for(judging, 10)
    finally:
        await deps.pool.release(update)

    assert verdict is None  # superseded: the job the update enqueued judges the new phone
    row = await deps.pool.fetchrow("SELECT phone_status, phone_e164 FROM leads WHERE id = $1", lead_id)
    assert tuple(row) == ("pending", None)


async def _valid_lead_with_a_conversation(deps, firm_id: int, typed: str, e164: str) -> int:
    lead_id = await store(deps.pool, firm_id, typed)
    await service.validate_lead(deps, lead_id)
    async with deps.pool.acquire() as conn:
        await upsert_conversation(conn, firm_id, e164)
    return lead_id


async def _file_inbound_until_the_bump(conn, firm_id: int, phone: str):
    """What filing an inbound text does before it moves its conversation up: the
    conversation upserted (a new row version of this transaction), the message stored."""
    from datetime import datetime, timezone

    from webhooks import queries as webhook_queries

    conversation_id, _ = await upsert_conversation(conn, firm_id, phone)
    await webhook_queries.insert_inbound_message(
        conn, firm_id=firm_id, conversation_id=conversation_id, body="running late",
        twilio_status="received", twilio_sid="SM" + "7" * 32, segments=1, received_at=datetime.now(timezone.utc))
    return conversation_id


async def test_a_phone_change_while_a_reply_files_into_the_old_phones_conversation_waits_for_it_and_neither_deadlocks(
        deps, broker, firm):
    """The CRM changes the phone of a lead whose reply a worker is filing. The filing's
    second write of the conversation re-checks its lead (a foreign key on a row version
    of its own transaction): with the lead held FOR UPDATE that check waited for the
    update, which waited for the conversation, and PostgreSQL aborted one (the PATCH
    answered 500). The update now holds the lead FOR NO KEY UPDATE."""
    import asyncio

    from conversations.queries import bump_conversation

    lead_id = await _valid_lead_with_a_conversation(deps, firm.id, "(212) 555-0193", "+12125550193")
    filing = await deps.pool.acquire()
    try:
        async with filing.transaction():
            conversation_id = await _file_inbound_until_the_bump(filing, firm.id, "+12125550193")
            changing = asyncio.create_task(service.update_lead(deps, firm.id, {"phone": "(212) 555-0194"},
                                                               lead_id=lead_id))
            await asyncio.sleep(0.3)  # the update now waits for the conversation
            assert not changing.done()
            await asyncio.wait_for(bump_conversation(filing, conversation_id), 0.9)  # before any deadlock check
        updated = await asyncio.wait_for(changing, 10)
    finally:
        await deps.pool.release(filing)
    assert updated is not None and updated.updated == ["phone"]


async def test_a_lead_deleted_while_a_reply_files_into_its_conversation_is_deleted_on_a_second_try(deps, broker, firm):
    """A delete must hold the lead FOR UPDATE, so the filing's check of the lead waits for
    it while it waits for the conversation: PostgreSQL aborts the delete (the first to
    wait, the first to look for a deadlock), and the delete runs again once the filing
    has committed."""
    import asyncio

    from conversations.queries import bump_conversation

    lead_id = await _valid_lead_with_a_conversation(deps, firm.id, "(212) 555-0195", "+12125550195")
    filing = await deps.pool.acquire()
    try:
        async with filing.transaction():
            conversation_id = await _file_inbound_until_the_bump(filing, firm.id, "+12125550195")
            deleting = asyncio.create_task(service.delete_lead(deps, firm.id, lead_id))
            await asyncio.sleep(0.3)  # the delete now holds the lead and waits for the conversation
            await asyncio.wait_for(bump_conversation(filing, conversation_id), 10)
        assert await asyncio.wait_for(deleting, 10) is True
    finally:
        await deps.pool.release(filing)
    assert await deps.pool.fetchval("SELECT count(*) FROM leads WHERE id = $1", lead_id) == 0
