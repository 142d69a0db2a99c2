"""The inbox page: `/` and `/static/...`, plain files with no build step.

The page is a client of the portal API (`/v1/...`, docs/openapi.yaml) and nothing more: it holds no
data of its own and reads the firm's API key from the URL fragment (`#key=...`), which
browsers never send to a server. Serving it from the same aiohttp app keeps it on the
API's origin, so no CORS is needed.

In demo mode (`demo_sim_url` given) one more route lets the page make a lead reply through
the Twilio simulator: `POST /demo/conversations/{id}/reply` asks the simulator to deliver a
real signed inbound text, so a STOP typed there goes through the same webhook, keyword
and consent path as one from a handset. It is never mounted outside the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from shared.errors import HttpError, not_found
from firms.auth import firm_for_key
from shared.web import DEPS, json_response, path_id, read_json

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_REPLY_CHARS = 1600

# The page loads only its own files and talks only to its own origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

SIM_URL = web.AppKey("demo_sim_url", str)


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


async def favicon(request: web.Request) -> web.StreamResponse:
    """`/favicon.ico`, which browsers ask for by themselves: the page's icon (an SVG)."""
    return web.FileResponse(STATIC_DIR / "favicon.svg",
                            headers={"Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400"})


async def page_config(request: web.Request) -> web.Response:
    """What the page needs to know before its first API call: whether the demo controls
    exist. Always 200, so a page outside the demo logs no failed request."""
    return json_response({"demo": SIM_URL in request.app})


async def demo_status(request: web.Request) -> web.Response:
    """Tells the page that demo controls are available (404 when not in demo mode)."""
    return json_response({"demo": True})


async def _firm_id(request: web.Request) -> int:
    """The firm of the bearer key; `/demo/` is outside `/v1/`, so this checks it itself."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HttpError(401, "unauthorized", "Send your API key as 'Authorization: Bearer <key>'.")
    firm_id = await firm_for_key(request.app, key.strip())
    if firm_id is None:
        raise HttpError(401, "unauthorized", "That API key is not valid.")
    return firm_id


async def reply_target(pool: Any, firm_id: int, conversation_id: int) -> tuple[str, str] | None:
    """(lead's phone, firm's number) of one of the firm's conversations."""
    row = await pool.fetchrow(
        """SELECT c.phone_e164, f.sms_number FROM conversations c JOIN firms f ON f.id = c.firm_id
           WHERE c.id = $1 AND c.firm_id = $2""",
        conversation_id, firm_id,
    )
    return None if row is None else (row["phone_e164"], row["sms_number"])


async def demo_reply(request: web.Request) -> web.Response:
    """The lead of this conversation texts `body` to the firm, through the simulator."""
    firm_id = await _firm_id(request)
    conversation_id = path_id(request)
    data = await read_json(request)
    body = data.get("body")
    if not isinstance(body, str) or not body.strip():
        raise HttpError(400, "empty_body", "Type the lead's reply.")
    if len(body) > MAX_REPLY_CHARS:
        raise HttpError(400, "body_too_long", f"A reply is at most {MAX_REPLY_CHARS} characters.")
    target = await reply_target(request.app[DEPS].pool, firm_id, conversation_id)
    if target is None:
        raise not_found("conversation")
    phone, firm_number = target
    sim_url = request.app[SIM_URL]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            async with session.post(f"{sim_url}/sim/inbound",
                                    json={"from": phone, "to": firm_number, "body": body}) as resp:
                answer = await resp.json(content_type=None)
                status = resp.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise HttpError(502, "simulator_unreachable",
                        f"The Twilio simulator at {sim_url} did not answer ({type(exc).__name__}).") from exc
    webhook_status = answer.get("answer_status") if isinstance(answer, dict) else None
    if status != 200 or not isinstance(webhook_status, int) or not 200 <= webhook_status < 300:
        raise HttpError(502, "reply_not_delivered",
                        f"The simulator could not deliver the reply (webhook answered {webhook_status}).")
    log.info("demo_reply_delivered", conversation_id=conversation_id, message_sid=answer.get("message_sid"))
    return json_response({"message_sid": answer.get("message_sid"), "webhook_status": webhook_status})


def _has_route(app: web.Application, name: str) -> bool:
    return name in app.router.named_resources()


def add_demo_routes(app: web.Application, sim_url: str) -> None:
    if _has_route(app, "demo.reply"):
        return
    app[SIM_URL] = sim_url.rstrip("/")
    app.router.add_get("/demo/status", demo_status, name="demo.status")
    app.router.add_post(r"/demo/conversations/{id:\d+}/reply", demo_reply, name="demo.reply")


def add_routes(app: web.Application, demo_sim_url: str | None = None) -> None:
    """Mount the page (once) and, in demo mode, the reply route."""
    if not _has_route(app, "inbox.index"):
        app.router.add_get("/", index, name="inbox.index")
        app.router.add_get("/favicon.ico", favicon, name="inbox.favicon")
        app.router.add_get("/inbox/config", page_config, name="inbox.config")
        app.router.add_static("/static/", STATIC_DIR, name="inbox.static", follow_symlinks=False)
    if demo_sim_url:
        add_demo_routes(app, demo_sim_url)
