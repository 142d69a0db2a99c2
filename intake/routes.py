"""The CRM hook and the signup read, update and delete: `POST /v1/leads`,
`GET`/`PATCH`/`DELETE /v1/leads/{id}`.

`GET` answers the sendable decision (docs/send-pipeline.md): the code comes from the SQL function
`send_block_code` (one definition, migration 0002) inside the lead's query, and its
words from `conversations.sendable`, the one place the product's notice texts live.
That import runs against the package diagram (intake -> lookup -> shared) on purpose:
`sendable` is a leaf (no project imports, so no cycle can form) and copying the texts
here would make two definitions of them.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from intake import erasure, service
from intake.actors import erase_person, validate_lead
from intake.batching import ValidationBatcher
from intake.validation import LeadInputError, changes_from_json, changes_from_lead, lead_from_json
from conversations.shapes import lead_json
from shared.broker import enqueue
from shared.errors import HttpError
from shared.phones import check_phone
from shared.web import DEPS, FIRM_ID, json_response, path_id, read_json, user_id

log = structlog.get_logger(__name__)

# new signups' validations, coalesced into `validate_lead(id, ...)` jobs (intake/batching.py)
VALIDATIONS = web.AppKey("intake_validations", ValidationBatcher)


async def _enqueue_validations(lead_ids: list[int]) -> None:
    await enqueue(validate_lead, *lead_ids)


async def _parsed(request: web.Request, parse):
    """The JSON body through `parse` (a validation function); a malformed field is a 400."""
    body = await read_json(request)
    try:
        return parse(body)
    except LeadInputError as exc:
        raise HttpError(400, exc.code, exc.message, field=exc.field) from None


async def post_lead(request: web.Request) -> web.Response:
    lead = await _parsed(request, lead_from_json)
    firm_id = request[FIRM_ID]
    deps = request.app[DEPS]
    accepted = await service.accept_lead(deps.pool, firm_id, lead, deps.redis)
    if not accepted.created:
        updated = await service.update_lead(deps, firm_id, changes_from_lead(lead), external_id=lead.external_id)
        if updated is not None and updated.updated:
            await _revalidate(updated)
            return json_response({"lead_id": updated.lead_id, "phone_status": updated.phone_status,
                                  "updated": updated.updated}, status=200)
        log.info("lead_reposted", lead_id=accepted.lead_id)
        return json_response(
            {"lead_id": accepted.lead_id, "phone_status": accepted.phone_status, "duplicate": True}, status=202)
    await request.app[VALIDATIONS].add(accepted.lead_id)
    return json_response(
        {"lead_id": accepted.lead_id, "phone_status": accepted.phone_status, "duplicate": False}, status=202)


async def _enqueue_validation(lead_id: int) -> None:
    await _enqueue_or_sweep(validate_lead, lead_id)


async def _enqueue_or_sweep(job, row_id: int) -> None:
    try:
        await enqueue(job, row_id)
    except Exception as exc:  # stored: the sweeper re-enqueues it after STALE_AFTER_S
        log.warning("enqueue_failed", actor=job.actor_name, row_id=row_id, error=f"{type(exc).__name__}: {exc}")


async def _revalidate(updated: service.Updated) -> None:
    if updated.revalidate:
        await _enqueue_validation(updated.lead_id)


async def patch_lead(request: web.Request) -> web.Response:
    lead_id = path_id(request)
    if await service.lead_for_firm(request.app[DEPS].pool, request[FIRM_ID], lead_id) is None:
        raise HttpError(404, "not_found", "No such lead.")  # before the body: another firm's id reads as unknown
    changes = await _parsed(request, changes_from_json)
    updated = await service.update_lead(request.app[DEPS], request[FIRM_ID], changes, lead_id=lead_id)
    if updated is None:
        raise HttpError(404, "not_found", "No such lead.")
    await _revalidate(updated)
    return json_response({**await _lead_json(request, lead_id), "updated": updated.updated})


async def delete_lead(request: web.Request) -> web.Response:
    if not await service.delete_lead(request.app[DEPS], request[FIRM_ID], path_id(request)):
        raise HttpError(404, "not_found", "No such lead.")
    return web.Response(status=204)


async def get_lead(request: web.Request) -> web.Response:
    return json_response(await _lead_json(request, path_id(request)))


async def _lead_json(request: web.Request, lead_id: int) -> dict:
    """The lead shape (GET /v1/leads/{id}); 404 when the firm has no such signup."""
    row = await service.lead_for_firm(request.app[DEPS].pool, request[FIRM_ID], lead_id)
    if row is None:
        raise HttpError(404, "not_found", "No such lead.")
    return lead_json(row)


async def post_erasure(request: web.Request) -> web.Response:
    """`{phone}` or `{lead_id}` + X-User-Id → 202 `{erasure_id}`; the erasure runs on the
    intake queue (intake/erasure.py)."""
    deps, firm_id = request.app[DEPS], request[FIRM_ID]
    body = await read_json(request)
    requested_by = user_id(request)
    if deps.settings.erasure_key is None:
        raise HttpError(503, "erasure_not_configured", "Erasure is not configured on this server.")
    phone, lead_id = body.get("phone"), body.get("lead_id")
    if (phone is None) == (lead_id is None):
        raise HttpError(400, "invalid_erasure", "Send either phone or lead_id.")
    if phone is not None:
        if not isinstance(phone, str):
            raise HttpError(400, "invalid_phone", "phone must be a string.")
        check = check_phone(phone, await service.firm_region(deps.pool, firm_id))
        if check.status != "valid":
            raise HttpError(400, "invalid_phone", "phone is not a valid phone number.")
        phone = check.e164
    else:
        if not isinstance(lead_id, int) or isinstance(lead_id, bool) or await service.lead_for_firm(
                deps.pool, firm_id, lead_id) is None:
            raise HttpError(404, "not_found", "No such lead.")
    erasure_id = await erasure.request_erasure(deps, firm_id, requested_by, phone=phone, lead_id=lead_id)
    await _enqueue_or_sweep(erase_person, erasure_id)
    return json_response({"erasure_id": erasure_id}, status=202)


async def get_erasure(request: web.Request) -> web.Response:
    status = await erasure.erasure_status(request.app[DEPS].pool, request[FIRM_ID], path_id(request))
    if status is None:
        raise HttpError(404, "not_found", "No such erasure.")
    return json_response(status)


def add_routes(app: web.Application) -> None:
    app[VALIDATIONS] = ValidationBatcher(_enqueue_validations)
    app.router.add_post("/v1/leads", post_lead)
    app.router.add_get(r"/v1/leads/{id:\d+}", get_lead)
    app.router.add_patch(r"/v1/leads/{id:\d+}", patch_lead)
    app.router.add_delete(r"/v1/leads/{id:\d+}", delete_lead)
    app.router.add_post("/v1/erasure", post_erasure)
    app.router.add_get(r"/v1/erasure/{id:\d+}", get_erasure)
