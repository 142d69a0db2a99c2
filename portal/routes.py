"""HTTP routes of this package (filled in by its issue)."""

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Mount this package's routes on the app."""
