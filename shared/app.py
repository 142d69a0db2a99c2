"""Composition: the only shared module (with cli.py and worker.py) that imports domain packages.

- `create_app(settings)`: the aiohttp app with every package's routes.
- `ACTOR_MODULES` / `load_actors()`: what a worker (and an enqueuing web process) imports.
- `sweep_tasks()`: the sweeper's tasks, in the order they run.
"""

from __future__ import annotations

import importlib
from typing import AsyncIterator

import dramatiq
from aiohttp import web

from shared import broker as brokers
from shared import inbox
from shared import ops
from shared.config import Settings
from shared.deps import Deps, close_deps, open_deps
from shared.sweeper import SweepTask
from shared.web import BROKER, DEPS, base_app

DOMAIN_PACKAGES = ("intake", "lookup", "send_pipeline", "webhooks", "portal")
ACTOR_MODULES = ("shared.diagnostics", "intake.actors", "lookup.actors", "send_pipeline.actors", "webhooks.actors")


def load_actors() -> None:
    for module in ACTOR_MODULES:
        importlib.import_module(module)


def sweep_tasks() -> dict[str, SweepTask]:
    tasks: dict[str, SweepTask] = {}
    for package in DOMAIN_PACKAGES:
        module = importlib.import_module(f"{package}.sweeps")
        for name, task in module.SWEEPS.items():
            tasks[f"{package}.{name}"] = task
    return tasks


def create_app(settings: Settings, *, deps: Deps | None = None, broker: dramatiq.Broker | None = None) -> web.Application:
    """The web app. With `deps` given (tests), the caller owns them; else they are opened
    on the app's loop and closed at cleanup. With `broker` None, one is built from
    `BROKER_URL` and installed."""
    app = base_app()
    if broker is None and settings.broker_url:
        broker = brokers.install(brokers.build_broker(settings.broker_url))
    if broker is not None:
        app[BROKER] = broker
    load_actors()

    if deps is not None:
        app[DEPS] = deps
    else:
        async def deps_ctx(app: web.Application) -> AsyncIterator[None]:
            opened = await open_deps(settings, pool_size=20)
            app[DEPS] = opened
            yield
            await close_deps(opened)

        app.cleanup_ctx.append(deps_ctx)

    for package in DOMAIN_PACKAGES:
        importlib.import_module(f"{package}.routes").add_routes(app)
    ops.add_routes(app)
    # The inbox page at `/`; `leadsms demo` sets DEMO_SIM_URL to add its reply control.
    inbox.add_routes(app, demo_sim_url=settings.demo_sim_url)
    return app
