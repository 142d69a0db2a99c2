"""Composition: the only shared module (with cli.py and worker.py) that imports domain packages.

- `create_app(settings)`: the aiohttp app with every package's routes.
- `ACTOR_MODULES`: every actor module, imported here, so a worker (and an enqueuing
  web process) knows every actor; `shared.broker.install` binds them to its broker.
- `sweep_tasks()`: the sweeper's tasks, in the order they run.

Every package is imported by name here, so the import-linter contracts see each edge.
"""

from __future__ import annotations

from typing import AsyncIterator

import dramatiq
from aiohttp import web

import consent.routes
import firms.pauses
import events.routes
import events.sweeps
import intake.actors
import intake.routes
import intake.sweeps
import lookup.actors
import ops.actors
import outbound.actors
import outbound.routes
import outbound.sweeps
import ops.routes
import ops.sweeps
import portal.inbox_page
import portal.routes
import send_pipeline.actors
import send_pipeline.routes
import send_pipeline.sweeps
import webhooks.actors
import webhooks.routes
import webhooks.sweeps
from firms import auth
from shared import broker as brokers
from shared import sweeper
from shared.config import Settings
from shared.deps import Deps, close_deps, open_deps
from shared.sweeper import SweepTask
from shared.web import BROKER, DEPS, base_app

ACTOR_MODULES = (ops.actors, intake.actors, lookup.actors, send_pipeline.actors, webhooks.actors, outbound.actors)
SWEEP_MODULES = {"events": events.sweeps, "intake": intake.sweeps, "send_pipeline": send_pipeline.sweeps,
                 "webhooks": webhooks.sweeps, "outbound": outbound.sweeps, "sweeper": sweeper, "firms": firms.pauses,
                 "ops": ops.sweeps}
ROUTE_MODULES = (events.routes, intake.routes, consent.routes, send_pipeline.routes, webhooks.routes, portal.routes,
                 outbound.routes)


def sweep_tasks() -> dict[str, SweepTask]:
    tasks: dict[str, SweepTask] = {}
    for package, module in SWEEP_MODULES.items():
        for name, task in module.SWEEPS.items():
            tasks[f"{package}.{name}"] = task
    return tasks


def create_app(settings: Settings, *, deps: Deps | None = None, broker: dramatiq.Broker | None = None) -> web.Application:
    """The web app. With `deps` given (tests), the caller owns them; else they are opened
    on the app's loop and closed at cleanup. With `broker` None, one is built from
    `BROKER_URL` and installed."""
    app = base_app(auth.firm_for_key)
    app[auth.AUTH_CACHE] = {}
    if broker is None and settings.broker_url:
        broker = brokers.install(brokers.build_broker(settings.broker_url))
    if broker is not None:
        app[BROKER] = broker

    if deps is not None:
        app[DEPS] = deps
    else:
        async def deps_ctx(app: web.Application) -> AsyncIterator[None]:
            opened = await open_deps(settings, pool_size=20)
            app[DEPS] = opened
            yield
            await close_deps(opened)

        app.cleanup_ctx.append(deps_ctx)

    for module in ROUTE_MODULES:
        module.add_routes(app)
    ops.routes.add_routes(app, metrics_on_app=settings.metrics_port == 0)
    # The inbox page at `/`; `leadsms demo` sets DEMO_SIM_URL to add its reply control.
    portal.inbox_page.add_routes(app, demo_sim_url=settings.demo_sim_url)
    return app


def create_metrics_app(main: web.Application) -> web.Application:
    """`/metrics` for the METRICS_PORT listener, reading `main`'s deps and broker."""
    return ops.routes.metrics_app(main)
