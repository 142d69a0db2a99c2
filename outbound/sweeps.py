"""The sweeper's tasks for outbound webhooks.

- `fan_out_and_start`: fan out every firm's new events (whatever wake-up was lost),
  give back claims whose worker died (lease run out), and start drains for endpoints
  with deliveries due (retries whose time came live here, in PostgreSQL, not in a
  dramatiq delay).
- `disable_failing`: endpoints that failed every attempt for 5 days are disabled (the
  firm learns it by a `webhook_endpoint.disabled` event).
- `prune_delivery_log`: finished deliveries and their attempts past
  `WEBHOOK_LOG_RETENTION_DAYS`, a batch at a time.
"""

from __future__ import annotations

import events
from outbound import delivery, fanout, queries
from outbound.actors import start_drains
from shared.deps import Deps
from shared.sweeper import in_batches

LEASE_BATCH = 1000
DUE_ENDPOINTS = 500
PRUNE_BATCH = 2000
PRUNE_BATCHES = 20


async def fan_out_and_start(deps: Deps) -> dict[str, int]:
    created = await fanout.fan_out(deps, None)
    released = await queries.release_expired_leases(deps.pool, LEASE_BATCH)
    due = await queries.endpoints_with_due(deps.pool, DUE_ENDPOINTS)
    started = await start_drains(deps, due)
    out = {"fanned_out": sum(created.values()), "leases_released": released, "drains_started": started}
    return {k: v for k, v in out.items() if v}


async def disable_failing(deps: Deps) -> int:
    disabled = 0
    firms = set()
    for endpoint_id in await queries.expired_failing_endpoints(deps.pool, delivery.DISABLE_AFTER_S):
        async with deps.pool.acquire() as conn, conn.transaction():
            row = await delivery.disable(conn, endpoint_id, "failing")
        if row is not None:
            disabled += 1
            firms.add(row["firm_id"])
    await events.wake(deps.redis, firms)
    return disabled


async def prune_delivery_log(deps: Deps) -> int:
    days = deps.settings.webhook_log_retention_days
    return await in_batches(lambda n: queries.prune_log(deps.pool, days, n), PRUNE_BATCH, PRUNE_BATCHES)


SWEEPS = {"fan_out_and_start": fan_out_and_start, "disable_failing": disable_failing,
          "prune_delivery_log": prune_delivery_log}
