"""structlog and stdlib logging in one shape: JSON off a terminal, console on one.

Context is bound with `structlog.contextvars.bind_contextvars` as soon as it is known
(request_id, firm_id, lead_id, message_id, message_sid) and appears on every line.
"""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure(fmt: str | None = None, level: str = "INFO") -> None:
    """Idempotent. `fmt` is "json" or "console"; None picks by whether stderr is a tty."""
    global _configured
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared_processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if fmt == "json" else (lambda _l, _m, e: e),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter that would otherwise drown the facts.
    for noisy in ("aiohttp.access", "pika", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True
