"""Sweep tasks of this package: name -> async fn(deps). Run by `leadsms sweeper`.

A lead still `pending` after `STALE_AFTER_S` lost its validate job (the broker was down
when the hook stored it, or a worker died holding it): it is enqueued again, at most once
per `STALE_AFTER_S`, so a worker outage does not pile up copies every pass. An erasure
not done after `STALE_AFTER_S` is run again (it is idempotent).
"""

from __future__ import annotations

from intake import erasure_queries, queries
from intake.actors import erase_person, validate_lead
from intake.batching import MAX_BATCH
from shared.broker import enqueue
from shared.deps import Deps

REQUEUE_BATCH = 1000


async def requeue_pending_leads(deps: Deps) -> int:
    """Re-enqueue validate_lead for stale pending leads; how many."""
    lead_ids = await queries.stale_pending_leads(deps.pool, deps.settings.stale_after_s, REQUEUE_BATCH)
    for start in range(0, len(lead_ids), MAX_BATCH):  # in batches, as the web enqueues them
        await enqueue(validate_lead, *lead_ids[start:start + MAX_BATCH])
    return len(lead_ids)


async def requeue_unfinished_erasures(deps: Deps) -> int:
    """An erasure not done after STALE_AFTER_S lost a job (its own, or a Twilio
    deletion's): run it again; it is idempotent and enqueues the deletions still to do."""
    ids = await erasure_queries.unfinished_erasures(deps.pool, deps.settings.stale_after_s, REQUEUE_BATCH)
    for erasure_id in ids:
        await enqueue(erase_person, erasure_id)
    return len(ids)


SWEEPS = {"requeue_pending_leads": requeue_pending_leads, "requeue_unfinished_erasures": requeue_unfinished_erasures}
