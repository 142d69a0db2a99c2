"""The event loop every leadsms process runs on: uvloop where it is installed.

uvloop cuts the web process's CPU per request by about a quarter and the worker's by a
fifth (docs/benchmarks.md); asyncio's own loop is the fallback, with the same behaviour.
"""

from __future__ import annotations

import asyncio


def install() -> str:
    """Make new event loops uvloop loops when uvloop is importable; returns which loop."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
