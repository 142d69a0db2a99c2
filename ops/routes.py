"""HTTP routes of operations: `/metrics`, `/ops`, `/ops.json`."""

from __future__ import annotations

from aiohttp import web

from ops.metrics import metrics_handler
from ops.page import ops_json_handler, ops_page_handler
from shared import metrics


def add_routes(app: web.Application) -> None:
    """Mount `/metrics`, `/ops` and `/ops.json` and the answer-counting middleware
    (shared/app.py calls this once, after the packages' routes)."""
    app.middlewares.append(metrics.answer_counting_middleware)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/ops", ops_page_handler)
    app.router.add_get("/ops.json", ops_json_handler)
