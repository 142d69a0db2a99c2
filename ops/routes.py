"""HTTP routes of operations: `/metrics`, `/ops`, `/ops.json`.

`/metrics` has a listener of its own on `METRICS_PORT` (`metrics_app`), apart from the
public port Twilio must reach; with `METRICS_PORT=0` it is served on `PORT` instead,
behind `OPS_TOKEN` like the ops page.
"""

from __future__ import annotations

from aiohttp import web

from ops.metrics import CACHE, SOURCE_APP, FiguresCache, metrics_handler
from ops.page import check_ops_token, ops_json_handler, ops_page_handler
from shared import metrics
from shared.web import error_middleware


async def metrics_behind_token(request: web.Request) -> web.Response:
    check_ops_token(request)
    return await metrics_handler(request)


def add_routes(app: web.Application, *, metrics_on_app: bool = False) -> None:
    """Mount `/ops` and `/ops.json` (and `/metrics` behind OPS_TOKEN when `metrics_on_app`)
    and the answer-counting middleware (shared/app.py calls this once, after the packages'
    routes)."""
    app.middlewares.append(metrics.answer_counting_middleware)
    if metrics_on_app:
        app[CACHE] = FiguresCache()
        app.router.add_get("/metrics", metrics_behind_token)
    app.router.add_get("/ops", ops_page_handler)
    app.router.add_get("/ops.json", ops_json_handler)


def metrics_app(source: web.Application, *, cache_ttl_s: float | None = None) -> web.Application:
    """The METRICS_PORT listener: `GET /metrics` only, unauthenticated, reading the deps and
    broker of `source` (the main web app). Keep the port private (a firewall, or
    `leadsms web --metrics-host 127.0.0.1`)."""
    app = web.Application(middlewares=[error_middleware])
    app[SOURCE_APP] = source
    app[CACHE] = FiguresCache() if cache_ttl_s is None else FiguresCache(cache_ttl_s)
    app.router.add_get("/metrics", metrics_handler)
    return app
