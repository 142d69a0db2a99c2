"""Tenancy: on every /v1 route with an id, another firm's key gets 404 and changes nothing.

The routes are read from the app's router, so a route added by any package later is
covered without editing this test (a new kind of id must be mapped in `ID_OF`).
"""

from __future__ import annotations

import re

from shared.app import create_app
from tests.portal.support import add_conversation, add_lead, add_message, set_line

# first path segment after /v1 -> which of the first firm's ids goes into {id}
ID_OF = {"leads": "lead", "conversations": "conversation", "messages": "message", "erasure": "erasure",
         "webhook-endpoints": "endpoint"}
BODY = {"body": "Hello from the wrong firm", "decision": "opt_out", "lead_id": 1,
        "url": "http://127.0.0.1:9/other", "events": ["*"]}
COUNTED = ("messages", "conversations", "leads", "phone_flags", "consent_events", "phone_flag_events")


def v1_routes_with_an_id(app) -> list[tuple[str, str, str]]:
    """(method, formatter, resource kind) of every /v1 route whose path takes an {id}."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        formatter = info.get("formatter", "")
        if route.method == "HEAD" or not formatter.startswith("/v1/") or "{id}" not in formatter:
            continue
        kind = formatter.split("/")[2]
        assert kind in ID_OF, f"map the id of {route.method} {formatter} in ID_OF"
        assert set(re.findall(r"{(\w+)}", formatter)) == {"id"}, formatter
        found.append((route.method, formatter, ID_OF[kind]))
    return found


async def counts(pool) -> dict[str, int]:
    return {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in COUNTED}


async def test_another_firms_key_gets_404_on_every_v1_route_with_an_id(http, pool, firm, make_firm, settings,
                                                                        deps, broker):
    app = create_app(settings, deps=deps, broker=broker)
    routes = v1_routes_with_an_id(app)
    assert ("GET", "/v1/conversations/{id}", "conversation") in routes
    assert {kind for _, _, kind in routes} >= {"lead", "conversation"}

    other = await make_firm()
    phone = "+16465553101"
    lead = await add_lead(pool, firm.id, "Tess Tenant", phone)
    await set_line(pool, phone, "mobile")
    conv = await add_conversation(pool, firm.id, phone)
    msg = await add_message(pool, firm.id, conv, "Only for firm one")
    erasure = await pool.fetchval("INSERT INTO erasures (firm_id, requested_by) VALUES ($1, 'dpo') RETURNING id", firm.id)
    async with http.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]},
                         headers=firm.headers) as resp:
        assert resp.status == 201, await resp.text()
        endpoint = (await resp.json())["id"]
    ids = {"lead": lead, "conversation": conv, "message": msg, "erasure": erasure, "endpoint": endpoint}
    before = await counts(pool)

    for method, formatter, kind in routes:
        path = formatter.replace("{id}", str(ids[kind]))
        kwargs = {"json": {**BODY, "lead_id": lead}} if method in ("POST", "PUT", "PATCH") else {}
        async with http.request(method, path, headers=other.user("intruder"), **kwargs) as resp:
            body = await resp.json()
            assert resp.status == 404, (method, path, resp.status, body)
            assert body["code"] == "not_found" and str(ids[kind]) not in body["error"]
        if method == "GET":  # the id is real: its own firm reads it
            async with http.get(path, headers=firm.user("u1")) as resp:
                assert resp.status == 200, (path, await resp.text())

    # ids in a body too: opening a conversation for another firm's lead
    async with http.post("/v1/conversations", json={"lead_id": lead}, headers=other.user("intruder")) as resp:
        assert resp.status == 404, await resp.text()
    # and the lists show none of the first firm's rows
    for path, params in (("/v1/conversations", {}), ("/v1/leads/sendable", {"q": "tess"})):
        async with http.get(path, params=params, headers=other.headers) as resp:
            assert (await resp.json())["items"] == []

    assert await counts(pool) == before
