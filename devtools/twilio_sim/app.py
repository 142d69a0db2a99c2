"""The simulator's aiohttp application and a way to run it inside another program.

`run_sim` exists so tests, the demo and the benchmarks can start a simulator on a free
port in their own loop, point `TWILIO_BASE_URL` at the URL it yields, and have it torn
down (pending callbacks cancelled) when they are done.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from devtools.twilio_sim import admin, api
from devtools.twilio_sim.config import SimConfig
from devtools.twilio_sim.state import SIM_STATE, SimState


async def _webhook_session(app: web.Application) -> AsyncIterator[None]:
    """One ClientSession for every callback and inbound POST, and cancel what is pending
    at shutdown."""
    state = app[SIM_STATE]
    state.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    try:
        yield
    finally:
        state.cancel_tasks()
        await state.session.close()
        state.session = None


def create_sim_app(config: SimConfig | None = None) -> web.Application:
    config = config or SimConfig()
    app = web.Application(client_max_size=1024 * 1024)
    app[SIM_STATE] = SimState(config=config)
    app[api.EXPECTED_AUTH] = aiohttp.encode_basic_auth(config.account_sid, config.auth_token)
    app.cleanup_ctx.append(_webhook_session)
    api.add_routes(app)
    admin.add_routes(app)
    return app


@asynccontextmanager
async def run_sim(config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve the simulator until the block exits; yields its base URL, e.g.
    "http://127.0.0.1:43817" (port 0 picks a free port)."""
    runner = web.AppRunner(create_sim_app(config), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        yield f"http://{host}:{bound_port}"
    finally:
        await runner.cleanup()
