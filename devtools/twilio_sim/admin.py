"""`/sim/...`: what the simulator received, its counters, reset, run-time config, and
"text us" (an inbound message). Not part of Twilio's API; no auth (a local test tool).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from devtools.twilio_sim.signing import OPT_OUT_TYPES, deliver_inbound
from devtools.twilio_sim.state import SIM_STATE
from devtools.twilio_sim.store import now


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message, "code": "bad_request"}, status=400)


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def messages(request: web.Request) -> web.Response:
    """Every created message (with its status history) and every create attempt,
    refused ones included; `?to=` narrows both."""
    store = request.app[SIM_STATE].store
    to = request.query.get("to")
    created = [m for m in store.messages if m.to == to] if to else store.messages
    attempts = [a for a in store.attempts if a.get("to") == to] if to else store.attempts
    return web.json_response({"messages": [m.inspect() for m in created], "attempts": attempts})


async def lookups(request: web.Request) -> web.Response:
    return web.json_response({"lookups": request.app[SIM_STATE].store.lookups})


async def callbacks(request: web.Request) -> web.Response:
    """Every webhook POSTed (status callbacks and inbound texts) with the answer it got;
    `?sid=` / `?kind=` narrow it."""
    records = request.app[SIM_STATE].store.callbacks
    sid, kind = request.query.get("sid"), request.query.get("kind")
    if sid:
        records = [r for r in records if r.get("message_sid") == sid]
    if kind:
        records = [r for r in records if r.get("kind") == kind]
    return web.json_response({"callbacks": records})


async def counters(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    return web.json_response({**state.store.counters, "pending_tasks": len(state.tasks),
                              "burst_429_left": state.burst_429_left})


async def reset(request: web.Request) -> web.Response:
    """Forget everything, including per-number tries; pending callbacks are cancelled."""
    state = request.app[SIM_STATE]
    state.cancel_tasks()
    state.store.reset()
    state.accounts.reset()
    state.burst_429_left = 0
    return web.json_response({"reset": True})


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_STATE].config.public())


async def set_config(request: web.Request) -> web.Response:
    """e.g. {"callbacks_enabled": false, "callback_delay_s": 0.05}"""
    state = request.app[SIM_STATE]
    changes = await _json_body(request)
    if changes is None:
        return _bad("Send a JSON object of settings to change.")
    try:
        state.config = state.config.updated(changes)
    except ValueError as exc:
        return _bad(str(exc))
    if "burst_429" in changes:  # starts a burst of that many 429s now
        state.burst_429_left = state.config.burst_429
    if "fault_seed" in changes:
        state.rng.seed(state.config.fault_seed)
    return web.json_response(state.config.public())


async def inbound(request: web.Request) -> web.Response:
    """Text us: {"from", "to", "body", "opt_out_type"?} → a signed POST to
    PUBLIC_BASE_URL/twilio/inbound (with Advanced Opt-Out's OptOutType when given);
    answers with the status our webhook gave."""
    state = request.app[SIM_STATE]
    payload = await _json_body(request)
    if payload is None or not all(isinstance(payload.get(k), str) for k in ("from", "to", "body")):
        return _bad('Send JSON {"from": "+1…", "to": "+1…", "body": "…"}.')
    opt_out_type = payload.get("opt_out_type")
    if opt_out_type is not None and opt_out_type not in OPT_OUT_TYPES:
        return _bad(f"opt_out_type must be one of {', '.join(OPT_OUT_TYPES)}.")
    assert state.session is not None
    owner = state.accounts.owner_of(payload["to"])  # signed by the account that owns the number
    state.accounts.record_inbound(payload["from"], payload["to"], payload["body"])
    url, params, answer = await deliver_inbound(
        state.session, public_base_url=state.config.public_base_url,
        auth_token=owner.auth_token, account_sid=owner.sid,
        from_=payload["from"], to=payload["to"], body=payload["body"], opt_out_type=opt_out_type,
        messaging_service_sid=owner.service_of(payload["to"]),
    )
    state.store.add_callback({
        "kind": "inbound", "url": url, "message_sid": params["MessageSid"], "params": params,
        "answer_status": answer.status, "error": answer.error, "at": now().isoformat(),
    })
    return web.json_response({
        "url": url, "message_sid": params["MessageSid"], "answer_status": answer.status,
        "answer_body": answer.body, "error": answer.error,
    })


async def accounts(request: web.Request) -> web.Response:
    """GET: the accounts (no tokens). POST {"sid", "auth_token", "numbers", "messaging_services"}:
    add or replace one (accounts.py)."""
    state = request.app[SIM_STATE]
    if request.method == "POST":
        payload = await _json_body(request)
        try:
            state.accounts.register(payload)
        except ValueError as exc:
            return _bad(str(exc))
    return web.json_response({"accounts": [a.public() for a in state.accounts.by_sid.values()]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sim/messages", messages)
    app.router.add_get("/sim/lookups", lookups)
    app.router.add_get("/sim/callbacks", callbacks)
    app.router.add_get("/sim/counters", counters)
    app.router.add_post("/sim/reset", reset)
    app.router.add_get("/sim/config", get_config)
    app.router.add_post("/sim/config", set_config)
    app.router.add_post("/sim/inbound", inbound)
    app.router.add_get("/sim/healthz", healthz)
    app.router.add_get("/sim/accounts", accounts)
    app.router.add_post("/sim/accounts", accounts)
