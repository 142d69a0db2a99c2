"""HTTP routes: Twilio's two webhooks and staff review of a possible opt-out.

The Twilio handlers check the signature, store the request (the inbox row first, then the
job) and answer; everything else happens in the jobs. Twilio retries a non-2xx, so: 403
for a bad signature (nothing stored), 503 when PostgreSQL is down (it will retry), and
2xx as soon as the row is stored, even when the broker is not reachable.
"""

from __future__ import annotations

import asyncpg
import structlog
from aiohttp import web

from shared.errors import HttpError
from shared.web import DEPS, FIRM_ID, json_response, path_id, read_json, user_id
from webhooks import accounts, dispatch, inbox, service
from webhooks.batcher import StatusBatcher
from webhooks.signature import SIGNATURE_HEADER, is_valid_signature, signed_url

log = structlog.get_logger(__name__)

STATUS_BATCHER = web.AppKey("webhooks_status_batcher", StatusBatcher)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _signed_form(request: web.Request) -> dict[str, str]:
    """The form of a request Twilio signed, with the token of the account it names
    (webhooks/accounts.py); or a 4xx. Never trusts the Host header. Whether that account
    may speak for what the request names is checked after (`_receive`)."""
    deps = request.app[DEPS]
    settings = deps.settings
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        log.warning("webhook_unsigned", path=request.path)
        raise HttpError(403, "bad_signature", "This request is not signed by Twilio.")
    if request.content_type not in FORM_TYPES:
        raise HttpError(415, "unsupported_media_type", "Twilio webhooks are form-encoded.")
    try:
        form = await request.post()
    except UnicodeDecodeError:  # Twilio sends UTF-8; anything else is not Twilio
        log.warning("webhook_bad_encoding", path=request.path)
        raise HttpError(400, "invalid_utf8", "The form body is not valid UTF-8.") from None
    url = signed_url(settings.public_base_url, request.path_qs)
    account_sid = form.get("AccountSid")
    named = account_sid if isinstance(account_sid, str) else None
    tokens = await accounts.tokens_for_account(request.app, deps, named)
    valid = any(is_valid_signature(token, url, form, signature) for token in tokens)
    if not valid and named and named != settings.twilio_account_sid:  # a subaccount token changed since cached?
        tokens = await accounts.tokens_for_account(request.app, deps, named, fresh=True)
        valid = any(is_valid_signature(token, url, form, signature) for token in tokens)
    if not valid:
        log.warning("webhook_bad_signature", path=request.path)
        raise HttpError(403, "bad_signature", "The X-Twilio-Signature does not match this request.")
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    if not params.get("MessageSid", "").strip():
        raise HttpError(400, "missing_message_sid", "MessageSid is required.")
    return params


async def _receive(request: web.Request, kind: str, message_id: int | None) -> None:
    params = await _signed_form(request)
    deps = request.app[DEPS]
    try:
        if kind == "status":
            # Group commit: its account checked, stored and enqueued with the callbacks
            # that arrived with it (one query of each kind for the whole batch).
            await request.app[STATUS_BATCHER].store(deps, params, message_id)
            return
        await accounts.check_inbound_account(deps, params)
        stored = await inbox.store_webhook(deps, kind, params, message_id)
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        # Not stored, so not answered 2xx: Twilio retries later.
        log.warning("webhook_not_stored", kind=kind, error=type(exc).__name__)
        raise HttpError(503, "unavailable", "The database is unavailable. Try again shortly.",
                        headers={"Retry-After": "1"}) from exc
    if stored.pending:
        await dispatch.enqueue_quietly(kind, stored.inbox_id)


async def twilio_status(request: web.Request) -> web.Response:
    await _receive(request, "status", inbox.message_id_param(request.query.get("m")))
    return web.Response(status=204)


async def twilio_inbound(request: web.Request) -> web.Response:
    await _receive(request, "inbound", None)
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def review_conversation(request: web.Request) -> web.Response:
    user = user_id(request)
    body = await read_json(request)
    decision = body.get("decision")
    if not isinstance(decision, str):
        raise HttpError(400, "bad_decision", "decision must be \"opt_out\" or \"keep\".")
    result = await service.decide_review(request.app[DEPS], request[FIRM_ID], path_id(request), decision, user)
    return json_response(result.as_json())


def add_routes(app: web.Application) -> None:
    """Mount this package's routes on the app."""
    app[STATUS_BATCHER] = StatusBatcher()
    app[accounts.TOKEN_CACHE] = {}
    app.router.add_post("/twilio/status", twilio_status)
    app.router.add_post("/twilio/inbound", twilio_inbound)
    app.router.add_post(r"/v1/conversations/{id:\d+}/review", review_conversation)
