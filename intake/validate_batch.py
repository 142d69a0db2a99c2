"""Validating signups in batches: one job, one transaction, a few statements for many leads.

The web coalesces the validation jobs of the signups it accepts together (batching.py)
into `validate_leads(ids)`. The job does what `service.validate_lead` does for one lead,
for all of them at once: each phone is judged in its firm's region, the verdicts are
written in one UPDATE (only to leads still `pending`, so a repeated job changes nothing),
with the same side effects in the same transaction — the conversations of those phones
locked first (in (firm, phone) order) and relinked to the newest signup, an erased
person's opt-out restored, `lead.updated` and `conversation.updated` on the change feed
(one `record_many`). The phones that still need a line type go to Lookup as one
`lookup_line_types` job (lookup/batch.py), where up to `LOOKUP_CONCURRENCY` lookups run
at once and each phone is still paid for once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import structlog

import events
from consent import ledger
from conversations import feed
from conversations import queries as conversation_queries
from intake import erasure_queries, queries
from intake.erasure import phone_hash
from conversations.shapes import lead_json
from lookup import queries as lookup_queries
from lookup.service import ttl_seconds
from shared import metrics
from shared.deps import Deps
from shared.phones import check_phone

log = structlog.get_logger(__name__)

# Leads one job validates at most (the web's jobs hold up to intake/batching.py's MAX_BATCH).
MAX_LEADS = 500


@dataclass
class BatchVerdicts:
    verdicts: dict[int, tuple[str, str | None, str | None]] = field(default_factory=dict)  # id -> status, e164, error
    lookups: list[str] = field(default_factory=list)  # phones to look up, each once, in lead order


async def validate_leads(deps: Deps, lead_ids: Sequence[int]) -> BatchVerdicts:
    """Judge these leads' phones as `validate_lead` judges one; the phones to look up.
    Unknown ids are skipped (logged)."""
    ids = sorted(set(lead_ids))[:MAX_LEADS]
    rows = await queries.leads_to_validate(deps.pool, ids)
    if len(rows) < len(ids):
        log.warning("validate_unknown_leads", lead_ids=sorted(set(ids) - {r["id"] for r in rows}))
    out = BatchVerdicts()
    pending = [r for r in rows if r["phone_status"] == "pending"]
    fresh: set[str] = set()
    superseded: set[int] = set()
    if pending:
        fresh, superseded = await _judge_pending(deps, pending, out)
    repeated = {r["phone_e164"] for r in rows if r["phone_status"] != "pending" and r["phone_e164"] is not None}
    if repeated:  # a repeated job: only make sure the line type gets looked up
        cached = await lookup_queries.cached_lines(deps.pool, sorted(repeated), ttl_seconds(deps))
        fresh |= {p for p, row in cached.items() if row["fresh"]}
    hits: list[float] = []
    for r in rows:
        if r["id"] in superseded:
            continue
        status, e164, error = out.verdicts.get(r["id"], (r["phone_status"], r["phone_e164"], r["phone_error"]))
        out.verdicts[r["id"]] = (status, e164, error)
        wants = e164 is not None and e164 not in fresh and (
            status == "valid" or error == lookup_queries.LOOKUP_INVALID)
        if wants and e164 not in out.lookups:
            out.lookups.append(e164)
        elif e164 in fresh and r["phone_status"] == "pending":  # known at once, from the cache
            hits.append(r["age_s"])
    if hits:
        await metrics.record_lookup(deps.redis, "cache_hit", len(hits))
        await metrics.observe_line_type_latencies(deps.redis, hits)
    return out


async def _judge_pending(deps: Deps, pending: list, out: BatchVerdicts) -> tuple[set[str], set[int]]:
    """The verdicts of the pending leads, written with their side effects in one
    transaction; the phones whose cached line is fresh, and the leads left alone because
    they changed since they were read."""
    checks = {r["id"]: check_phone(r["phone_raw"], r["default_region"]) for r in pending}
    pairs = sorted({(r["firm_id"], checks[r["id"]].e164) for r in pending if checks[r["id"]].e164 is not None})
    phones = sorted({p for _, p in pairs})
    changed_by_firm: dict[int, list[int]] = {}
    async with deps.pool.acquire() as conn, conn.transaction():
        # the leads first, then their conversations: the order a lead update takes them in
        # (the opposite deadlocks). A lead updated since it was read is left to the job its
        # update enqueued: its verdict here would be the old phone's.
        locked = {r["id"]: r["phone_raw"] for r in await queries.lock_pending_leads(conn, [r["id"] for r in pending])}
        superseded = {r["id"] for r in pending if r["id"] not in locked or locked[r["id"]] != r["phone_raw"]}
        if superseded:
            log.info("validate_superseded", lead_ids=sorted(superseded))
            pending = [r for r in pending if r["id"] not in superseded]
            pairs = sorted({(r["firm_id"], checks[r["id"]].e164) for r in pending
                            if checks[r["id"]].e164 is not None})
            phones = sorted({p for _, p in pairs})
        if pairs:
            await conversation_queries.lock_conversations(conn, [f for f, _ in pairs], [p for _, p in pairs])
        cached = await lookup_queries.cached_lines(conn, phones, ttl_seconds(deps)) if phones else {}
        for r in pending:
            check = checks[r["id"]]
            status, e164, error = check.status, check.e164, check.error
            line = cached.get(e164) if e164 is not None else None
            if line is not None and line["valid"] is False:
                status, error = "invalid", lookup_queries.LOOKUP_INVALID
            out.verdicts[r["id"]] = (status, e164, error)
        order = [r["id"] for r in pending]
        changed = await queries.set_phones(conn, order, [out.verdicts[i][0] for i in order],
                                           [out.verdicts[i][1] for i in order], [out.verdicts[i][2] for i in order])
        firm_of = {r["id"]: r["firm_id"] for r in pending}
        restored = [(firm_of[i], out.verdicts[i][1]) for i in order
                    if i in changed and out.verdicts[i][0] == "valid"]
        await _restore_erased_opt_outs(deps, conn, restored)
        if changed:
            items = [(row["firm_id"], "lead.updated", lead_json(row))
                     for row in await conversation_queries.leads_by_ids(conn, sorted(changed))]
            await events.record_many(conn, items)
            relink = sorted({(firm_of[i], out.verdicts[i][1]) for i in changed if out.verdicts[i][1] is not None})
            relinked = await conversation_queries.relink_conversations_of_pairs(
                conn, [f for f, _ in relink], [p for _, p in relink]) if relink else []
            await feed.messages_changed(conn, [], [(r["firm_id"], r["id"]) for r in relinked])
            for i in changed:
                changed_by_firm.setdefault(firm_of[i], []).append(i)
    if changed_by_firm:
        await events.wake(deps.redis, changed_by_firm)
        statuses: dict[str, int] = {}
        for i in (i for ids in changed_by_firm.values() for i in ids):
            statuses[out.verdicts[i][0]] = statuses.get(out.verdicts[i][0], 0) + 1
        log.info("leads_validated", leads=sum(len(v) for v in changed_by_firm.values()), **statuses)
    return {p for p, row in cached.items() if row["fresh"]}, superseded


async def _restore_erased_opt_outs(deps: Deps, conn, pairs: list[tuple[int, str]]) -> None:
    """An erased person's opt-out restored on each (firm, phone): one lookup of the
    suppression list, then the (rare) opt-outs one at a time."""
    key = deps.settings.erasure_key
    if not key or not pairs:
        return
    hashes = {phone_hash(key, f, p): (f, p) for f, p in pairs}
    found = await erasure_queries.suppression_sources(conn, [f for f, _ in hashes.values()], list(hashes))
    for row in found:
        firm_id, phone = hashes[row["phone_hash"]]
        if await ledger.opt_out(conn, firm_id, phone, row["source"],
                                detail="restored: the phone's erased person had opted out"):
            log.info("erased_opt_out_restored", firm_id=firm_id)
