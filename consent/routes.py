"""HTTP routes of consent: staff opt-outs and their removal, the firm's opt-out list, a
phone's consent history (JSON, or CSV for an audit)."""

from __future__ import annotations

import csv
import io

from aiohttp import web

from consent import service
from shared.errors import HttpError
from shared.phones import E164_RE
from shared.web import DEPS, FIRM_ID, json_response, parse_id, read_json, user_id


async def add_opt_out(request: web.Request) -> web.Response:
    user = user_id(request)
    body = await read_json(request)
    phone, reason = body.get("phone"), body.get("reason")
    if not isinstance(phone, str) or not phone.strip():
        raise HttpError(400, "invalid_phone", "Send the phone to opt out as a string \"phone\".")
    if reason is not None and (not isinstance(reason, str) or len(reason) > service.MAX_REASON):
        raise HttpError(400, "invalid_reason", f"reason must be a string of at most {service.MAX_REASON} characters.")
    result, created = await service.staff_opt_out(request.app[DEPS], request[FIRM_ID], phone, user,
                                                  (reason or "").strip() or None)
    return json_response(result, status=201 if created else 200)


async def remove_opt_out(request: web.Request) -> web.Response:
    phone = service.e164_path_phone(request.match_info["phone"])
    user = user_id(request)
    await service.remove_opt_out(request.app[DEPS], request[FIRM_ID], phone, user)
    return web.Response(status=204)


async def list_opt_outs(request: web.Request) -> web.Response:
    raw_limit = request.query.get("limit") or ""
    limit = service.LIST_DEFAULT_LIMIT if raw_limit == "" else parse_id(raw_limit)
    if limit is None or limit > service.LIST_MAX_LIMIT:
        raise HttpError(400, "invalid_limit", f"limit must be a whole number from 1 to {service.LIST_MAX_LIMIT}.")
    after = request.query.get("after") or None
    if after is not None and not E164_RE.match(after):
        raise HttpError(400, "invalid_cursor", "after must be the \"next\" cursor of a previous page.")
    page = await service.opt_out_page(request.app[DEPS], request[FIRM_ID], after, limit)
    return json_response(page)


async def consent_history(request: web.Request) -> web.Response:
    phone = service.e164_path_phone(request.match_info["phone"])
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise HttpError(400, "invalid_format", "format must be \"json\" or \"csv\".")
    items = await service.consent_history(request.app[DEPS], request[FIRM_ID], phone)
    if fmt == "json":
        return json_response({"phone": phone, "items": items})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(service.CONSENT_CSV_COLUMNS)
    for item in items:
        writer.writerow([item["at"].isoformat() if c == "at" else item[c] for c in service.CONSENT_CSV_COLUMNS])
    return web.Response(text=out.getvalue(), content_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="consent-{phone[1:]}.csv"'})


def add_routes(app: web.Application) -> None:
    """Mount this package's routes on the app."""
    app.router.add_post("/v1/opt-outs", add_opt_out)
    app.router.add_get("/v1/opt-outs", list_opt_outs)
    app.router.add_delete("/v1/opt-outs/{phone}", remove_opt_out)
    app.router.add_get("/v1/consent/{phone}", consent_history)
