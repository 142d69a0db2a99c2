"""A firm's webhook endpoints: create (the secret shown once), list, change, remove,
rotate the secret. The URL passes the SSRF guard's registration check (guard.py)."""

from __future__ import annotations

from typing import Any

import structlog

from events import EVENT_TYPES
from outbound import guard, queries, whsec
from shared.deps import Deps
from shared.errors import HttpError, PermanentError

log = structlog.get_logger(__name__)

ROTATION_GRACE_S = 24 * 3600
MAX_ENDPOINTS_PER_FIRM = 20


class InvalidEvents(PermanentError):
    code = "invalid_events"


def endpoint_shape(row: Any) -> dict[str, Any]:
    """api.md's endpoint, never with a secret."""
    return {"id": row["id"], "url": row["url"], "events": list(row["event_types"]), "enabled": row["enabled"],
            "disabled_at": row["disabled_at"], "disabled_reason": row["disabled_reason"],
            "created_at": row["created_at"], "updated_at": row["updated_at"],
            "previous_secret_expires_at": row["previous_secret_expires_at"]}


def check_events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidEvents('events must be a list of event types, or ["*"] for every type.')
    if value == ["*"]:
        return ["*"]
    unknown = sorted(set(value) - EVENT_TYPES)
    if unknown or "*" in value:
        raise InvalidEvents(f"unknown event types: {', '.join(unknown) or '*'} (known: {', '.join(sorted(EVENT_TYPES))}"
                            ', or ["*"] alone).')
    return sorted(set(value))


async def create(deps: Deps, firm_id: int, url: Any, event_types: Any) -> dict[str, Any]:
    url = guard.check_url(url, allow_private=deps.settings.webhooks_allow_private)
    types = check_events(event_types)
    secret = whsec.new_secret()
    async with deps.pool.acquire() as conn, conn.transaction():
        count = await conn.fetchval("SELECT count(*) FROM webhook_endpoints WHERE firm_id = $1", firm_id)
        if count >= MAX_ENDPOINTS_PER_FIRM:
            raise HttpError(409, "too_many_endpoints", f"A firm may have at most {MAX_ENDPOINTS_PER_FIRM} endpoints.")
        row = await queries.insert_endpoint(conn, firm_id, url, types, whsec.seal(deps.settings.credentials_key, secret))
    log.info("webhook_endpoint_created", firm_id=firm_id, endpoint_id=row["id"])
    return {**endpoint_shape(row), "secret": secret}


async def list_for(deps: Deps, firm_id: int) -> list[dict[str, Any]]:
    return [endpoint_shape(r) for r in await queries.endpoints_of_firm(deps.pool, firm_id)]


async def get(deps: Deps, firm_id: int, endpoint_id: int) -> dict[str, Any]:
    row = await queries.endpoint_of_firm(deps.pool, firm_id, endpoint_id)
    if row is None:
        raise HttpError(404, "not_found", "No such webhook endpoint.")
    return endpoint_shape(row)


async def update(deps: Deps, firm_id: int, endpoint_id: int, body: dict[str, Any]) -> dict[str, Any]:
    url = None if "url" not in body else guard.check_url(body["url"], allow_private=deps.settings.webhooks_allow_private)
    types = None if "events" not in body else check_events(body["events"])
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await queries.update_endpoint(conn, firm_id, endpoint_id, url, types)
    if row is None:
        raise HttpError(404, "not_found", "No such webhook endpoint.")
    log.info("webhook_endpoint_updated", firm_id=firm_id, endpoint_id=endpoint_id)
    return endpoint_shape(row)


async def remove(deps: Deps, firm_id: int, endpoint_id: int) -> None:
    if not await queries.delete_endpoint(deps.pool, firm_id, endpoint_id):
        raise HttpError(404, "not_found", "No such webhook endpoint.")
    log.info("webhook_endpoint_deleted", firm_id=firm_id, endpoint_id=endpoint_id)


async def rotate(deps: Deps, firm_id: int, endpoint_id: int, grace_s: int = ROTATION_GRACE_S) -> dict[str, Any]:
    secret = whsec.new_secret()
    row = await queries.rotate_secret(deps.pool, firm_id, endpoint_id, whsec.seal(deps.settings.credentials_key, secret),
                                      grace_s)
    if row is None:
        raise HttpError(404, "not_found", "No such webhook endpoint.")
    log.info("webhook_secret_rotated", firm_id=firm_id, endpoint_id=endpoint_id)
    return {"id": row["id"], "secret": secret, "previous_secret_expires_at": row["previous_secret_expires_at"]}
