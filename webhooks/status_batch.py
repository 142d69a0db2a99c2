"""Applying status callbacks in batches: one job, one transaction, a few statements.

The web stores the callbacks of a burst in group commits (batcher.py) and enqueues one
`apply_status_batch` job per commit, with the inbox ids it stored. The job:

1. locks those rows still unprocessed (`FOR UPDATE SKIP LOCKED`: a row another job holds
   is that job's to apply), at most `MAX_ROWS`;
2. locks their messages (by `?m=` id or by sid, in id order) and reads, per sid, the
   newest callback applied before;
3. decides in memory what applying the rows one by one would do (status_rules.py: forward
   only, in message creation order, so a replayed or reordered callback counts once and
   never moves a status back);
4. locks the phone flags those decisions touch (in (firm, phone) order), counts the
   consecutive carrier-filter failures and resets, and blocks at
   BLOCK_AFTER_FILTER_FAILURES;
5. writes it all back set-based (messages, flags, flag audit, the change-feed events in
   one `record_many`, the inbox rows' outcomes) and commits. The per-firm event counters
   are taken at commit in firm-id order (migration 0011), so batches over several firms
   cannot deadlock on them.

Rare effects (30006 asks Lookup again, 30005/21211 mark the phone invalid, 21610 opts it
out) run after the bulk writes, in the same transaction, through the same functions one
callback at a time always used.

One `message.status` event is written per message the batch changed, with the message as
it is at commit (one-by-one writes one per callback; the intermediate ones of a single
transaction were never visible to a reader), and one `conversation.updated` per
conversation whose last message moved or whose phone was blocked.
"""

from __future__ import annotations

from typing import Sequence

import asyncpg
import structlog

import events
from consent import ledger as consent
from conversations import feed
from conversations.queries import conversations_of_phone
from lookup.actors import lookup_line_type
from lookup.service import record_invalid
from shared.broker import enqueue
from shared.deps import Deps
from webhooks import queries, status_queries
from webhooks.status_codes import OPT_OUT_SOURCE, effect_of
from webhooks.status_rules import (
    Callback,
    Effect,
    FlagState,
    MessageState,
    filter_failure_pairs,
    plan_flags,
    plan_statuses,
)

log = structlog.get_logger(__name__)

# Inbox rows one job applies at most (the web's group commits hold up to 200).
MAX_ROWS = 500


def chunks(ids: Sequence[int], size: int = MAX_ROWS) -> list[list[int]]:
    """The ids in jobs of at most `size` (what the web and the sweeper enqueue)."""
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


async def apply_status_batch(deps: Deps, inbox_ids: Sequence[int], *, wait: bool = False) -> dict[int, str]:
    """Apply these status callbacks; the outcome recorded on each row applied now (rows
    processed already are not in it, nor those another job holds, unless `wait`: then
    this waits for that job and finds them processed)."""
    woken: set[int] = set()
    async with deps.pool.acquire() as conn:
        async with conn.transaction():
            # Plans made for this batch's rows, not generic ones cached on this connection
            # while the tables were small (docs/benchmarks.md: they read every row of
            # twilio_inbox per batch and of events per event); the feed's commit trigger too.
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            outcomes = await _apply(deps, conn, inbox_ids, woken, wait)
    await events.wake(deps.redis, woken)
    return outcomes


async def _apply(deps: Deps, conn: asyncpg.Connection, inbox_ids: Sequence[int], woken: set[int],
                 wait: bool) -> dict[int, str]:
    rows = await status_queries.lock_unprocessed_status_rows(conn, inbox_ids, MAX_ROWS, skip_locked=not wait)
    if not rows:
        return {}
    callbacks = [Callback(r["id"], r["message_sid"], r["twilio_status"], r["message_id"], r["params"] or {},
                          r["received_at"]) for r in rows]
    sids = sorted({c.sid for c in callbacks})
    message_rows = await status_queries.lock_messages_for_status(
        conn, sorted({c.message_id for c in callbacks if c.message_id is not None}), sids)
    messages = [MessageState.from_row(r) for r in message_rows]
    newest = {r["message_sid"]: (r["received_at"], r["id"]) for r in await status_queries.newest_applied(conn, sids)}
    erased: set[str] = set()
    if any(c.message_id not in {m.id for m in messages} and c.sid not in {m.twilio_sid for m in messages}
           for c in callbacks):
        erased = await status_queries.erased_sids(conn, sids)
    plan = plan_statuses(callbacks, messages, erased, newest)

    await status_queries.write_message_statuses(conn, [
        (m.id, m.status, m.twilio_status, m.twilio_sid, m.error_code, m.error_message, m.from_number)
        for m in plan.messages])
    conversations = {(m.firm_id, m.conversation_id) for m in plan.messages if m.moved}
    conversations |= await _apply_flags(deps, conn, plan.effects)
    woken |= await feed.messages_changed(conn, [m.id for m in plan.messages if m.event], conversations)
    for effect in plan.effects:
        woken |= await _apply_rare_effect(conn, effect)
    applied = [i for i in plan.outcomes if i not in set(plan.erased)]
    await status_queries.mark_processed_many(conn, applied, [plan.outcomes[i] for i in applied])
    if plan.erased:
        await status_queries.delete_inbox_many(conn, plan.erased)
        log.info("webhook_for_erased_message_dropped", inbox_ids=plan.erased)
    for cb in callbacks:
        outcome = plan.outcomes[cb.inbox_id]
        if outcome in ("unmatched", "sid_mismatch"):
            log.warning(f"status_{outcome}", inbox_id=cb.inbox_id, message_sid=cb.sid, message_id=cb.message_id,
                        twilio_status=cb.twilio_status)
    log.info("status_batch_applied", rows=len(callbacks), messages=len(plan.messages),
             moved=sum(1 for m in plan.messages if m.moved), effects=len(plan.effects))
    return plan.outcomes


async def _apply_flags(deps: Deps, conn: asyncpg.Connection, effects: list[Effect]) -> set[tuple[int, int]]:
    """Count, reset and block (set-based); the conversations of the phones blocked now."""
    if not effects:
        return set()
    failing = filter_failure_pairs(effects)
    if failing:
        await status_queries.create_flags(conn, [p[0] for p in failing], [p[1] for p in failing])
    pairs = sorted({e.pair for e in effects})
    flags = {(r["firm_id"], r["phone_e164"]): FlagState(r["consecutive_filter_failures"], r["blocked"])
             for r in await status_queries.lock_flags_many(conn, [p[0] for p in pairs], [p[1] for p in pairs])}
    audit = plan_flags(effects, flags, deps.settings.block_after_filter_failures)
    changed = sorted(p for p, f in flags.items() if f.changed)
    if changed:
        await status_queries.write_flags(conn, [p[0] for p in changed], [p[1] for p in changed],
                                         [flags[p].consecutive_filter_failures for p in changed],
                                         [flags[p].blocked_now for p in changed])
    await status_queries.add_flag_events(conn, [(a.firm_id, a.phone_e164, a.kind, a.reason, a.actor, a.message_id)
                                                for a in audit])
    out: set[tuple[int, int]] = set()
    for pair in changed:
        if flags[pair].blocked_now:
            log.info("phone_blocked", firm_id=pair[0], failures=flags[pair].consecutive_filter_failures)
            out |= {(r["firm_id"], r["id"]) for r in await conversations_of_phone(conn, pair[1], pair[0])}
    return out


async def _apply_rare_effect(conn: asyncpg.Connection, effect: Effect) -> set[int]:
    """30006's Lookup refresh, 30005/21211's invalid phone, 21610's opt-out: one at a time."""
    e = effect_of(effect.error_code, effect.status)
    firm_id, phone = effect.pair
    woken: set[int] = set()
    if e.refresh_line_type:
        # Enqueued inside the transaction: if the broker fails, the whole batch is retried;
        # if the commit fails after it, a spare refresh is harmless.
        await enqueue(lookup_line_type, phone, True)
    if e.invalid_reason:
        await record_invalid(conn, phone, e.invalid_reason)
        await queries.add_flag_event(conn, firm_id, phone, "invalidated",
                                     reason=f"error {effect.error_code}: {e.invalid_reason}",
                                     message_id=effect.message.id)
        woken |= await feed.phone_changed(conn, phone, firm_id)
    if e.opt_out:
        await consent.opt_out(conn, firm_id, phone, OPT_OUT_SOURCE, message_sid=effect.message.twilio_sid or effect.sid)
        woken.add(firm_id)
    return woken
