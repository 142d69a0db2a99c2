"""HTTP routes of the portal's read API (docs/openapi.yaml): picker, conversation list, thread open.

Handlers parse, call `portal.service`, and map its errors; the firm comes from the /v1
auth middleware (`request[FIRM_ID]`), so every read is the caller's firm only.
"""

from __future__ import annotations

from aiohttp import web

from portal import service
from portal.picker import BadQuery
from portal.shapes import BadCursor
from shared.errors import HttpError
from shared.web import DEPS, FIRM_ID, json_response, path_id


async def sendable_leads(request: web.Request) -> web.Response:
    try:
        items = await service.sendable_leads(request.app[DEPS], request[FIRM_ID], request.query.get("q"))
    except BadQuery as exc:
        raise HttpError(400, exc.code, exc.message) from exc
    return json_response({"items": items})


async def list_conversations(request: web.Request) -> web.Response:
    limit = _limit(request.query.get("limit"))
    try:
        page = await service.list_conversations(request.app[DEPS], request[FIRM_ID], limit,
                                                request.query.get("before") or None, request.query.get("q"))
    except BadCursor as exc:
        raise HttpError(400, "bad_cursor", "before must be the 'next' cursor of a previous page.") from exc
    except BadQuery as exc:
        raise HttpError(400, exc.code, exc.message) from exc
    return json_response(page)


async def open_conversation(request: web.Request) -> web.Response:
    conversation = await service.open_conversation(request.app[DEPS], request[FIRM_ID], path_id(request))
    return json_response(conversation)


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return service.DEFAULT_LIMIT
    message = f"limit must be a whole number from 1 to {service.MAX_LIMIT}."
    if not raw.isascii() or not raw.isdigit() or len(raw) > 3:
        raise HttpError(400, "bad_limit", message)
    value = int(raw)
    if not 1 <= value <= service.MAX_LIMIT:
        raise HttpError(400, "bad_limit", message)
    return value


def add_routes(app: web.Application) -> None:
    """Mount the portal's routes (ids are `\\d+`, so /v1/leads/sendable never reads as one)."""
    app.router.add_get("/v1/leads/sendable", sendable_leads)
    app.router.add_get("/v1/conversations", list_conversations)
    app.router.add_get(r"/v1/conversations/{id:\d+}", open_conversation)
