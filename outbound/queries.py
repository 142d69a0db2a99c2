"""SQL of outbound webhooks. `$n` parameters only; the services decide transactions."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

_ENDPOINT = """id, firm_id, url, event_types, enabled, disabled_at, disabled_reason, created_at, updated_at,
               previous_secret_expires_at"""


# ---- endpoints ----------------------------------------------------------------------------

async def insert_endpoint(conn: Conn, firm_id: int, url: str, event_types: Sequence[str], secret_enc: str) -> asyncpg.Record:
    """A new endpoint starts at the firm's current cursor: it gets the events from now on."""
    return await conn.fetchrow(
        f"""INSERT INTO webhook_endpoints (firm_id, url, event_types, secret_enc, fanned_to)
            VALUES ($1, $2, $3::text[], $4,
                    coalesce((SELECT last_seq FROM event_counters WHERE firm_id = $1), 0))
            RETURNING {_ENDPOINT}""",
        firm_id, url, list(event_types), secret_enc,
    )


async def endpoints_of_firm(conn: Conn, firm_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE firm_id = $1 ORDER BY id", firm_id)


async def endpoint_of_firm(conn: Conn, firm_id: int, endpoint_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE firm_id = $1 AND id = $2",
                               firm_id, endpoint_id)


async def update_endpoint(conn: Conn, firm_id: int, endpoint_id: int, url: str | None,
                          event_types: Sequence[str] | None) -> asyncpg.Record | None:
    """Change url and/or events; a PATCH re-enables a disabled endpoint, and whatever it
    had pending is due at once."""
    row = await conn.fetchrow(
        f"""UPDATE webhook_endpoints SET url = coalesce($3, url), event_types = coalesce($4::text[], event_types),
                   enabled = true, disabled_at = NULL, disabled_reason = NULL, slow_until = NULL,
                   slow_streak = 0, failing_since = NULL, updated_at = clock_timestamp()
            WHERE firm_id = $1 AND id = $2
            RETURNING {_ENDPOINT}""",
        firm_id, endpoint_id, url, None if event_types is None else list(event_types),
    )
    if row is not None:
        await conn.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = clock_timestamp() WHERE endpoint_id = $1 AND status = 'pending'",
            endpoint_id,
        )
    return row


async def delete_endpoint(conn: Conn, firm_id: int, endpoint_id: int) -> bool:
    result = await conn.execute("DELETE FROM webhook_endpoints WHERE firm_id = $1 AND id = $2", firm_id, endpoint_id)
    return result.endswith(" 1")


async def rotate_secret(conn: Conn, firm_id: int, endpoint_id: int, secret_enc: str,
                        grace_s: int) -> asyncpg.Record | None:
    """The new secret signs from now; the one it replaces signs too for `grace_s`. A
    second rotation drops the oldest (only one previous secret is kept)."""
    return await conn.fetchrow(
        f"""UPDATE webhook_endpoints SET previous_secret_enc = secret_enc, secret_enc = $3,
                   previous_secret_expires_at = clock_timestamp() + make_interval(secs => $4),
                   updated_at = clock_timestamp()
            WHERE firm_id = $1 AND id = $2 RETURNING {_ENDPOINT}""",
        firm_id, endpoint_id, secret_enc, grace_s,
    )


async def endpoint_for_delivery(conn: Conn, endpoint_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, firm_id, url, enabled, slow_until, slow_until > clock_timestamp() AS slowed, secret_enc,
                  CASE WHEN previous_secret_expires_at > clock_timestamp() THEN previous_secret_enc END AS previous_enc
           FROM webhook_endpoints WHERE id = $1""",
        endpoint_id,
    )


# ---- fan-out ------------------------------------------------------------------------------

async def fan_out(conn: asyncpg.Connection, firm_ids: Sequence[int] | None, limit: int) -> list[asyncpg.Record]:
    """For the enabled endpoints of these firms (all firms when None), locked in id order:
    one delivery row per event past the endpoint's cursor whose type it wants, and the
    cursor moved past every event read (wanted or not), up to `limit` events each.
    Returns (endpoint_id, new deliveries, events read) per endpoint that read any."""
    return await conn.fetch(
        """
        WITH eps AS (
            SELECT id, firm_id, event_types, fanned_to FROM webhook_endpoints
            WHERE enabled AND ($1::bigint[] IS NULL OR firm_id = ANY($1::bigint[]))
            ORDER BY id FOR UPDATE
        ), batch AS (
            SELECT eps.id AS endpoint_id, eps.event_types, e.id AS event_id, e.firm_id, e.seq, e.type, e.at, e.data
            FROM eps CROSS JOIN LATERAL (
                SELECT id, firm_id, seq, type, at, data FROM events
                WHERE events.firm_id = eps.firm_id AND events.seq > eps.fanned_to
                ORDER BY seq LIMIT $2) AS e
        ), ins AS (
            INSERT INTO webhook_deliveries (endpoint_id, firm_id, event_id, event_seq, event_type, event_at, data)
            SELECT endpoint_id, firm_id, event_id, seq, type, at, data FROM batch
            WHERE '*' = ANY(event_types) OR type = ANY(event_types)
            ORDER BY endpoint_id, seq
            ON CONFLICT (endpoint_id, event_seq) DO NOTHING
            RETURNING endpoint_id
        ), tops AS (
            SELECT endpoint_id, max(seq) AS top, count(*) AS n FROM batch GROUP BY endpoint_id
        ), moved AS (
            UPDATE webhook_endpoints w SET fanned_to = tops.top FROM tops
            WHERE w.id = tops.endpoint_id AND tops.top > w.fanned_to
            RETURNING w.id
        )
        SELECT tops.endpoint_id, tops.n AS read,
               (SELECT count(*) FROM ins WHERE ins.endpoint_id = tops.endpoint_id) AS created
        FROM tops ORDER BY tops.endpoint_id
        """,
        None if firm_ids is None else list(firm_ids), limit,
    )


# ---- delivery -----------------------------------------------------------------------------

async def claim_due(conn: Conn, endpoint_id: int, lease_s: float, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` of the endpoint's due deliveries, oldest first, marked `delivering`
    until the lease ends (a worker that dies mid-request leaves them to the sweeper,
    which makes them pending again)."""
    return await conn.fetch(
        """
        WITH claimed AS (
            UPDATE webhook_deliveries d SET status = 'delivering', attempts = d.attempts + 1,
                   lease_until = clock_timestamp() + make_interval(secs => $2)
            WHERE d.id IN (SELECT id FROM webhook_deliveries
                           WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= clock_timestamp()
                           ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
            RETURNING d.id, d.endpoint_id, d.firm_id, d.event_id, d.event_seq, d.event_type, d.event_at,
                      d.data::text AS data, d.attempts, d.next_attempt_at
        )
        -- (RETURNING has no order: the oldest due goes first)
        SELECT * FROM claimed ORDER BY next_attempt_at, id
        """,
        endpoint_id, lease_s, limit,
    )


async def record_delivered(conn: Conn, delivery_id: int, endpoint_id: int, attempt: int, status_code: int,
                           duration_ms: int, excerpt: str | None) -> None:
    """A successful attempt: its log row, the delivery delivered, the endpoint's failing
    run over, in one statement."""
    await conn.execute(
        """
        WITH logged AS (
            INSERT INTO webhook_attempts (delivery_id, endpoint_id, attempt, outcome, status_code, duration_ms,
                                          response_excerpt)
            VALUES ($1, $2, $3, 'delivered', $4, $5, $6)
        ), healed AS (
            UPDATE webhook_endpoints SET failing_since = NULL, slow_streak = 0
            WHERE id = $2 AND (failing_since IS NOT NULL OR slow_streak <> 0)
        )
        UPDATE webhook_deliveries SET status = 'delivered', lease_until = NULL, delivered_at = clock_timestamp()
        WHERE id = $1 AND status = 'delivering'
        """,
        delivery_id, endpoint_id, attempt, status_code, duration_ms, excerpt,
    )


async def release_claims(conn: Conn, delivery_ids: Sequence[int]) -> None:
    """Claimed deliveries not attempted after all (the endpoint was disabled or slowed)."""
    await conn.execute(
        """UPDATE webhook_deliveries SET status = 'pending', attempts = attempts - 1, lease_until = NULL
           WHERE id = ANY($1::bigint[]) AND status = 'delivering'""",
        list(delivery_ids),
    )


async def after_drain(conn: Conn, endpoint_id: int) -> float | None:
    """Seconds until the endpoint's next pending delivery is due (0: due now), allowing
    for the endpoint's slow-down; None when nothing is pending (or it is disabled)."""
    return await conn.fetchval(
        """SELECT CASE WHEN count(*) > 0 THEN  -- (greatest() ignores NULLs: no rows must stay NULL)
                      greatest(0, extract(epoch FROM greatest(min(d.next_attempt_at), max(w.slow_until))
                                                    - clock_timestamp()))::float8 END
           FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.enabled
           WHERE d.endpoint_id = $1 AND d.status = 'pending'""",
        endpoint_id,
    )


async def record_attempt(conn: Conn, delivery_id: int, endpoint_id: int, attempt: int, outcome: str,
                         status_code: int | None, duration_ms: int, excerpt: str | None, status: str,
                         next_in_s: float | None) -> None:
    """The attempt's log row and the delivery's new state, in one statement."""
    await conn.execute(
        """
        WITH logged AS (
            INSERT INTO webhook_attempts (delivery_id, endpoint_id, attempt, outcome, status_code, duration_ms,
                                          response_excerpt)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
        )
        UPDATE webhook_deliveries SET status = $8, lease_until = NULL,
               delivered_at = CASE WHEN $8 = 'delivered' THEN clock_timestamp() END,
               next_attempt_at = CASE WHEN $9::float8 IS NULL THEN next_attempt_at
                                      ELSE clock_timestamp() + make_interval(secs => $9::float8) END
        WHERE id = $1 AND status = 'delivering'
        """,
        delivery_id, endpoint_id, attempt, outcome, status_code, duration_ms, excerpt, status, next_in_s,
    )


async def endpoint_failed(conn: Conn, endpoint_id: int, slow: bool, retry_after_s: float | None,
                          slow_max_s: float, disable_after_s: float) -> asyncpg.Record | None:
    """Note a failed attempt: the failing run starts now if none was running; when `slow`,
    no attempt to the endpoint before `Retry-After`, or 2^streak seconds (at most
    `slow_max_s`) for the streak-th slow answer in a row. Returns the endpoint, with
    `expired` true when it has now failed every attempt for `disable_after_s`."""
    return await conn.fetchrow(
        """
        UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, clock_timestamp()),
               slow_until = CASE WHEN NOT $2 THEN slow_until
                                 ELSE greatest(slow_until, clock_timestamp() + make_interval(
                                     secs => coalesce($3::float8, least($4::float8, power(2, slow_streak)::float8)))) END,
               slow_streak = CASE WHEN $2 THEN slow_streak + 1 ELSE slow_streak END
        WHERE id = $1
        RETURNING id, firm_id, url, enabled,
                  enabled AND failing_since < clock_timestamp() - make_interval(secs => $5::float8) AS expired
        """,
        endpoint_id, slow, retry_after_s, slow_max_s, disable_after_s,
    )


async def disable_endpoint(conn: Conn, endpoint_id: int, reason: str) -> asyncpg.Record | None:
    """Disable it (once); the row when this call disabled it, for the firm's event."""
    return await conn.fetchrow(
        """UPDATE webhook_endpoints SET enabled = false, disabled_at = clock_timestamp(), disabled_reason = $2,
                  updated_at = clock_timestamp()
           WHERE id = $1 AND enabled RETURNING id, firm_id, url, disabled_at, disabled_reason""",
        endpoint_id, reason,
    )


# ---- sweeps -------------------------------------------------------------------------------

async def release_expired_leases(conn: Conn, limit: int) -> int:
    rows = await conn.fetch(
        """UPDATE webhook_deliveries SET status = 'pending', lease_until = NULL, next_attempt_at = clock_timestamp()
           WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'delivering'
                        AND lease_until < clock_timestamp() ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id""",
        limit,
    )
    return len(rows)


async def endpoints_with_due(conn: Conn, limit: int) -> list[int]:
    rows = await conn.fetch(
        """SELECT w.id FROM webhook_endpoints w
           WHERE w.enabled AND (w.slow_until IS NULL OR w.slow_until <= clock_timestamp())
             AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = w.id AND d.status = 'pending'
                         AND d.next_attempt_at <= clock_timestamp())
           ORDER BY w.id LIMIT $1""",
        limit,
    )
    return [r["id"] for r in rows]


async def expired_failing_endpoints(conn: Conn, disable_after_s: float) -> list[int]:
    rows = await conn.fetch(
        """SELECT id FROM webhook_endpoints
           WHERE enabled AND failing_since < clock_timestamp() - make_interval(secs => $1::float8)""",
        disable_after_s,
    )
    return [r["id"] for r in rows]


async def prune_log(conn: Conn, older_than_days: int, limit: int) -> int:
    """Delete finished deliveries (and their attempts) older than the retention."""
    rows = await conn.fetch(
        """DELETE FROM webhook_deliveries WHERE id IN (
               SELECT id FROM webhook_deliveries
               WHERE created_at < clock_timestamp() - make_interval(days => $1) AND status IN ('delivered', 'failed')
               ORDER BY created_at LIMIT $2)
           RETURNING id""",
        older_than_days, limit,
    )
    return len(rows)


async def backlog(conn: Conn) -> list[asyncpg.Record]:
    """Per endpoint: undelivered rows and the age in seconds of the oldest one's event."""
    return await conn.fetch(
        """SELECT endpoint_id, count(*) AS undelivered,
                  extract(epoch FROM clock_timestamp() - min(event_at))::float8 AS oldest_s
           FROM webhook_deliveries WHERE status IN ('pending', 'delivering')
           GROUP BY endpoint_id ORDER BY endpoint_id"""
    )


# ---- the log and replay (CLI) -------------------------------------------------------------

async def deliveries_log(conn: Conn, firm_id: int, endpoint_id: int | None, failed_only: bool,
                         limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT d.id, d.endpoint_id, d.event_seq, d.event_type, d.event_id, d.status, d.attempts, d.created_at,
               d.next_attempt_at, d.delivered_at,
               a.outcome AS last_outcome, a.status_code AS last_status_code, a.duration_ms AS last_duration_ms,
               a.response_excerpt AS last_response, a.at AS last_attempt_at
        FROM webhook_deliveries d
        LEFT JOIN LATERAL (SELECT outcome, status_code, duration_ms, response_excerpt, at FROM webhook_attempts
                           WHERE delivery_id = d.id ORDER BY attempt DESC, id DESC LIMIT 1) a ON true
        WHERE d.firm_id = $1 AND ($2::bigint IS NULL OR d.endpoint_id = $2)
          AND (NOT $3 OR d.status = 'failed' OR (d.status <> 'delivered' AND a.outcome IS NOT NULL
                                                  AND a.outcome <> 'delivered'))
        ORDER BY d.id DESC LIMIT $4
        """,
        firm_id, endpoint_id, failed_only, limit,
    )


async def attempts_of(conn: Conn, delivery_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT attempt, at, outcome, status_code, duration_ms, response_excerpt FROM webhook_attempts
           WHERE delivery_id = $1 ORDER BY attempt, id""",
        delivery_id,
    )


async def replay(conn: asyncpg.Connection, endpoint_id: int, since: datetime) -> int:
    """Every event of the endpoint's firm since `since` (that it wants, and that the feed
    still holds, up to its cursor) is due again now: existing rows go back to pending
    with their webhook-id, missing ones are made."""
    rows = await conn.fetch(
        """
        WITH ep AS (SELECT id, firm_id, event_types, fanned_to FROM webhook_endpoints WHERE id = $1 FOR UPDATE)
        INSERT INTO webhook_deliveries (endpoint_id, firm_id, event_id, event_seq, event_type, event_at, data)
        SELECT ep.id, e.firm_id, e.id, e.seq, e.type, e.at, e.data
        FROM ep JOIN events e ON e.firm_id = ep.firm_id AND e.seq IS NOT NULL AND e.seq <= ep.fanned_to
                              AND e.at >= $2
        WHERE '*' = ANY(ep.event_types) OR e.type = ANY(ep.event_types)
        ON CONFLICT (endpoint_id, event_seq) DO UPDATE
            SET status = 'pending', attempts = 0, next_attempt_at = clock_timestamp(), lease_until = NULL
            WHERE webhook_deliveries.status <> 'delivering'
        RETURNING id
        """,
        endpoint_id, since,
    )
    await conn.execute(
        """UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = clock_timestamp()
           WHERE endpoint_id = $1 AND event_at >= $2 AND status IN ('delivered', 'failed')""",
        endpoint_id, since,
    )
    return len(rows)


async def endpoint_firm(conn: Conn, endpoint_id: int) -> int | None:
    return await conn.fetchval("SELECT firm_id FROM webhook_endpoints WHERE id = $1", endpoint_id)


# ---- erasure ------------------------------------------------------------------------------

async def delete_person_deliveries(conn: Conn, firm_id: int, phones: Sequence[str], lead_ids: Sequence[int],
                                   conversation_ids: Sequence[int], message_ids: Sequence[int]) -> int:
    """The delivery rows (and their attempts) whose payload names the person: the same
    rule as the erasure's for events."""
    result = await conn.execute(
        """DELETE FROM webhook_deliveries WHERE firm_id = $1 AND (
               data->>'phone' = ANY($2::text[])
            OR (event_type LIKE 'lead.%' AND (data->>'lead_id')::bigint = ANY($3::bigint[]))
            OR (event_type LIKE 'conversation.%' AND (data->>'conversation_id')::bigint = ANY($4::bigint[]))
            OR (event_type LIKE 'message.%' AND (data->>'id')::bigint = ANY($5::bigint[])))""",
        firm_id, list(phones), list(lead_ids), list(conversation_ids), list(message_ids),
    )
    return int(result.split()[-1])


async def delete_firm_webhooks(conn: Conn, firm_id: int) -> None:
    """A firm's offboarding: its endpoints, their deliveries and attempts."""
    await conn.execute("DELETE FROM webhook_deliveries WHERE firm_id = $1", firm_id)
    await conn.execute("DELETE FROM webhook_endpoints WHERE firm_id = $1", firm_id)
