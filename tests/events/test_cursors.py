"""Cursors never skip: a reader of `after=c` sees every committed event exactly once, however
the writers' transactions interleave, and never waits on a long transaction."""

from __future__ import annotations

import asyncio
import random

import pytest

import events
from events import service
from events.sweeps import prune_events
from shared.errors import HttpError

WRITERS = 16  # each holds its own connection (the pool is smaller)


async def test_a_reader_sees_every_event_once_while_writers_commit_in_random_order(deps, make_firm, settings):
    async with asyncio.timeout(60):
        await _many_writers_one_reader(deps, make_firm, settings)


async def _many_writers_one_reader(deps, make_firm, settings):
    from shared.db import connect

    firm, other = await make_firm(), await make_firm()
    writers = WRITERS
    order = list(range(writers))
    random.Random(17).shuffle(order)
    turns = [asyncio.Event() for _ in range(writers)]
    opened = asyncio.Semaphore(0)
    done = asyncio.Event()

    async def writer(n: int) -> None:
        conn = await connect(settings.database_url)
        try:
            tr = conn.transaction()
            await tr.start()
            # a batch touching both firms (its counters are taken in firm-id order at commit)
            await events.record_many(conn, [(other.id, "message.status", {"n": n}),
                                            (firm.id, "message.status", {"n": n, "part": 1})])
            await events.record(conn, firm.id, "message.status", {"n": n, "part": 2})
            opened.release()
            await turns[n].wait()
            await tr.commit()
        finally:
            await conn.close()

    async def long_transaction() -> None:
        # an unrelated long transaction, open for the whole test, holding an event of the firm
        conn = await connect(settings.database_url)
        try:
            tr = conn.transaction()
            await tr.start()
            await events.record(conn, firm.id, "lead.updated", {"lead_id": 0})
            await done.wait()
            await tr.rollback()
        finally:
            await conn.close()

    holder = asyncio.create_task(long_transaction())
    tasks = [asyncio.create_task(writer(n)) for n in range(writers)]
    for _ in range(writers):
        await opened.acquire()

    seen: list[tuple[int, int]] = []
    cursor = (await service.feed_page(deps.pool, firm.id, None, 100))["next"]

    async def read_once() -> None:
        nonlocal cursor
        page = await asyncio.wait_for(service.feed_page(deps.pool, firm.id, cursor, 7), 2)
        seen.extend((item["data"]["n"], item["data"]["part"]) for item in page["items"])
        cursor = page["next"]

    rng = random.Random(3)
    for n in order:  # commit in a random order, reading between commits
        turns[n].set()
        for _ in range(rng.randint(0, 2)):
            await read_once()
    await asyncio.gather(*tasks)
    for _ in range(20):
        await read_once()
    done.set()
    await holder

    expected = {(n, part) for n in range(writers) for part in (1, 2)}
    assert len(seen) == len(expected), "an event was seen twice or missed"
    assert set(seen) == expected
    # the two events of one transaction are adjacent and in their order
    for i in range(0, len(seen), 2):
        assert seen[i][0] == seen[i + 1][0] and (seen[i][1], seen[i + 1][1]) == (1, 2)
    other_page = await service.feed_page(deps.pool, other.id, "0", 500)
    assert sorted(item["data"]["n"] for item in other_page["items"]) == list(range(writers))


async def test_a_rolled_back_change_leaves_no_event(deps, firm):
    async with deps.pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        await events.record(conn, firm.id, "lead.deleted", {"lead_id": 5})
        await tr.rollback()
    page = await service.feed_page(deps.pool, firm.id, "0", 10)
    assert page == {"items": [], "next": "0"}


async def test_a_pruned_cursor_is_refused_and_the_new_start_works(deps, firm):
    async with deps.pool.acquire() as conn:
        for n in range(5):
            await events.record(conn, firm.id, "lead.deleted", {"lead_id": n})
        await conn.execute("UPDATE events SET at = now() - interval '8 days' WHERE firm_id = $1 AND seq <= 3", firm.id)
    assert await prune_events(deps) == 3
    with pytest.raises(HttpError) as refused:
        await service.feed_page(deps.pool, firm.id, "1", 10)
    assert (refused.value.status, refused.value.code) == (410, "cursor_expired")
    page = await service.feed_page(deps.pool, firm.id, "3", 10)
    assert [item["data"]["lead_id"] for item in page["items"]] == [3, 4]


async def test_an_unknown_event_type_is_refused_before_anything_is_written(deps, firm):
    from shared.errors import AppError

    async with deps.pool.acquire() as conn:
        with pytest.raises(AppError):
            await events.record(conn, firm.id, "lead.exploded", {})


async def _numbered(pool, firm_id: int) -> list[tuple[int, int]]:
    rows = await pool.fetch("SELECT seq, (data->>'lead_id')::int AS n FROM events WHERE firm_id = $1 ORDER BY id", firm_id)
    return [(r["seq"], r["n"]) for r in rows]


async def test_events_written_after_an_early_numbering_and_around_a_rolled_back_savepoint_are_numbered_without_gaps(
        deps, firm, make_firm):
    """The commit numbers what the transaction wrote, in order, per firm: also the events
    written after `SET CONSTRAINTS ALL IMMEDIATE` numbered the first ones, and none of
    those a rolled-back savepoint wrote. Nothing is left waiting once it has committed."""
    other = await make_firm()
    async with deps.pool.acquire() as conn, conn.transaction():
        await events.record_many(conn, [(other.id, "lead.deleted", {"lead_id": 1}), (firm.id, "lead.deleted", {"lead_id": 1}),
                                        (firm.id, "lead.deleted", {"lead_id": 2})])
        await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # numbers the three now
        await conn.execute("SET CONSTRAINTS ALL DEFERRED")
        await events.record(conn, firm.id, "lead.deleted", {"lead_id": 3})
        savepoint = conn.transaction()
        await savepoint.start()
        await events.record(conn, firm.id, "lead.deleted", {"lead_id": 99})
        await savepoint.rollback()
        await events.record(conn, other.id, "lead.deleted", {"lead_id": 2})
        await events.record(conn, firm.id, "lead.deleted", {"lead_id": 4})
    assert await _numbered(deps.pool, firm.id) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert await _numbered(deps.pool, other.id) == [(1, 1), (2, 2)]
    assert await deps.pool.fetchval("SELECT count(*) FROM events_pending") == 0
    page = await service.feed_page(deps.pool, firm.id, "2", 10)
    assert [item["data"]["lead_id"] for item in page["items"]] == [3, 4]


async def test_an_event_a_previous_release_writes_straight_to_the_log_is_still_numbered_in_turn(deps, firm):
    """During a rolling deploy a process of the previous release inserts into `events`
    itself, unnumbered: its commit still numbers it, after the new release's events."""
    await events.record(deps.pool, firm.id, "lead.deleted", {"lead_id": 1})
    async with deps.pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO events (firm_id, type, data) VALUES ($1, 'lead.deleted', '{\"lead_id\": 2}')",
                           firm.id)
    await events.record(deps.pool, firm.id, "lead.deleted", {"lead_id": 3})
    assert await _numbered(deps.pool, firm.id) == [(1, 1), (2, 2), (3, 3)]
