"""HTTP routes of the send pipeline: conversations, threads, messages, sends.

Handlers parse and validate, call `service`, and answer; the service raises `HttpError`
for every refusal (the middleware turns it into `{"error", "code"}`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from send_pipeline import service
from send_pipeline.thread_cursor import parse_thread_cursor
from send_pipeline.messages import clean_body, parse_cancel_on_reply, parse_send_at
from shared.errors import HttpError
from shared.web import DEPS, FIRM_ID, json_response, path_id, query_limit, read_json, user_id


async def open_conversation(request: web.Request) -> web.Response:
    data = await read_json(request)
    lead_id = data.get("lead_id")
    if isinstance(lead_id, bool) or not isinstance(lead_id, int):
        raise HttpError(400, "invalid_lead_id", "Send the lead's id as an integer \"lead_id\".")
    if not 1 <= lead_id <= 2**63 - 1:
        raise HttpError(404, "not_found", "No such lead.")
    body, created = await service.open_conversation(request.app[DEPS], request[FIRM_ID], lead_id)
    return json_response(body, status=201 if created else 200)


def _limit(request: web.Request) -> int:
    return query_limit(request, service.THREAD_DEFAULT_LIMIT, service.THREAD_MAX_LIMIT)


async def thread(request: web.Request) -> web.Response:
    page = await service.thread_page(request.app[DEPS], request[FIRM_ID], path_id(request),
                                     after=parse_thread_cursor(request.query.get("after")), limit=_limit(request))
    return json_response(page)


async def get_message(request: web.Request) -> web.Response:
    return json_response(await service.get_message(request.app[DEPS], request[FIRM_ID], path_id(request)))


async def send(request: web.Request) -> web.Response:
    conversation_id = path_id(request)
    user = user_id(request)
    data = await read_json(request)
    body = clean_body(data)
    send_at = parse_send_at(data, datetime.now(timezone.utc))
    cancel_on_reply = parse_cancel_on_reply(data)
    message, created = await service.accept_send(request.app[DEPS], request[FIRM_ID], conversation_id, user, body,
                                                 send_at=send_at, cancel_on_reply=cancel_on_reply)
    return json_response(message, status=202 if created else 200)


async def cancel_message(request: web.Request) -> web.Response:
    return json_response(await service.cancel_message(request.app[DEPS], request[FIRM_ID], path_id(request)))


def add_routes(app: web.Application) -> None:
    """Mount this package's routes on the app."""
    app.router.add_post("/v1/conversations", open_conversation)
    app.router.add_get(r"/v1/conversations/{id:\d+}/messages", thread)
    app.router.add_post(r"/v1/conversations/{id:\d+}/messages", send)
    app.router.add_get(r"/v1/messages/{id:\d+}", get_message)
    app.router.add_delete(r"/v1/messages/{id:\d+}", cancel_message)
