"""The CRM hook and the signup read: `POST /v1/leads`, `GET /v1/leads/{id}`.

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

from intake import service
from intake.actors import validate_lead
from intake.validation import LeadInputError, lead_from_json
from intake.shapes import lead_json
from shared.broker import enqueue
from shared.errors import HttpError
from shared.web import DEPS, FIRM_ID, json_response, path_id, read_json

log = structlog.get_logger(__name__)


async def post_lead(request: web.Request) -> web.Response:
    body = await read_json(request)
    try:
        lead = lead_from_json(body)
    except LeadInputError as exc:
        raise HttpError(400, exc.code, exc.message, field=exc.field) from None
    firm_id = request[FIRM_ID]
    deps = request.app[DEPS]
    accepted = await service.accept_lead(deps.pool, firm_id, lead, deps.redis)
    if accepted.created:
        try:
            await enqueue(validate_lead, accepted.lead_id)
        except Exception as exc:  # stored: the sweeper re-enqueues it after STALE_AFTER_S
            log.warning("validate_enqueue_failed", lead_id=accepted.lead_id, error=f"{type(exc).__name__}: {exc}")
    else:
        log.info("lead_reposted", lead_id=accepted.lead_id)
    return json_response(
        {"lead_id": accepted.lead_id, "phone_status": accepted.phone_status, "duplicate": not accepted.created},
        status=202,
    )


async def get_lead(request: web.Request) -> web.Response:
    row = await service.lead_for_firm(request.app[DEPS].pool, request[FIRM_ID], path_id(request))
    if row is None:
        raise HttpError(404, "not_found", "No such lead.")
    return json_response(lead_json(row))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/leads", post_lead)
    app.router.add_get(r"/v1/leads/{id:\d+}", get_lead)
