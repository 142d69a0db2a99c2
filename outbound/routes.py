"""HTTP of outbound webhooks: `/v1/webhook-endpoints` and its secret rotation."""

from __future__ import annotations

from aiohttp import web

from outbound import endpoints
from outbound.actors import start_drains
from shared.errors import HttpError
from shared.web import DEPS, FIRM_ID, json_response, parse_id, read_json


def _id(request: web.Request) -> int:
    endpoint_id = parse_id(request.match_info["id"])
    if endpoint_id is None:
        raise HttpError(404, "not_found", "No such webhook endpoint.")
    return endpoint_id


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    # a URL the guard refuses is a PermanentError: 400 url_not_allowed (shared/web.py)
    made = await endpoints.create(request.app[DEPS], request[FIRM_ID], body.get("url"), body.get("events"))
    return json_response(made, status=201)


async def list_all(request: web.Request) -> web.Response:
    return json_response({"items": await endpoints.list_for(request.app[DEPS], request[FIRM_ID])})


async def get_one(request: web.Request) -> web.Response:
    return json_response(await endpoints.get(request.app[DEPS], request[FIRM_ID], _id(request)))


async def update(request: web.Request) -> web.Response:
    endpoint_id = _id(request)
    body = await read_json(request)
    deps = request.app[DEPS]
    changed = await endpoints.update(deps, request[FIRM_ID], endpoint_id, body)
    # re-enabled: what it had pending is due now (the sweeper would find it too)
    await start_drains(deps, [endpoint_id], want=1)
    return json_response(changed)


async def remove(request: web.Request) -> web.Response:
    await endpoints.remove(request.app[DEPS], request[FIRM_ID], _id(request))
    return web.Response(status=204)


async def rotate(request: web.Request) -> web.Response:
    return json_response(await endpoints.rotate(request.app[DEPS], request[FIRM_ID], _id(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/webhook-endpoints", create)
    app.router.add_get("/v1/webhook-endpoints", list_all)
    app.router.add_get(r"/v1/webhook-endpoints/{id:\d+}", get_one)
    app.router.add_patch(r"/v1/webhook-endpoints/{id:\d+}", update)
    app.router.add_delete(r"/v1/webhook-endpoints/{id:\d+}", remove)
    app.router.add_post(r"/v1/webhook-endpoints/{id:\d+}/rotate-secret", rotate)
