"""structlog and stdlib logging in one shape: JSON off a terminal, console on one.

Context is bound with `structlog.contextvars.bind_contextvars` as soon as it is known
(request_id, firm_id, lead_id, message_id, message_sid) and appears on every line.

Our own events are rendered by structlog and written straight to the handler's stream
(`_LineLogger`, under the handler's lock), not through a stdlib LogRecord and
ProcessorFormatter: the same line, at ~25 µs instead of ~63 µs, and a filtered-out debug
call costs ~1.6 µs instead of ~8 (per message, the send path logs one line in the web and
one in the worker: docs/benchmarks.md). Other libraries' stdlib records (dramatiq,
asyncpg, aiohttp) still go through the formatter, in the same shape.
"""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


_handler: logging.StreamHandler | None = None  # the one configure() installed last


class _LineLogger:
    """What structlog's last processor hands a rendered line to: one write to the stream of
    the stdlib handler, under that handler's lock, so lines from both paths never mix.
    (The level is fixed when a logger is first used: configure once per process.)"""

    def __init__(self, name: str) -> None:
        self.name = name  # for structlog.stdlib.add_logger_name

    def msg(self, line: str) -> None:
        handler = _handler
        if handler is None:
            return
        handler.acquire()
        try:
            handler.stream.write(line + "\n")
            handler.flush()
        finally:
            handler.release()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _line_logger(*args: object) -> _LineLogger:
    return _LineLogger(str(args[0]) if args else "root")


def configure(fmt: str | None = None, level: str = "INFO") -> None:
    """Idempotent. `fmt` is "json" or "console"; None picks by whether stderr is a tty."""
    global _configured, _handler
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
    handler = logging.StreamHandler(sys.stderr)
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info if fmt == "json" else (lambda _l, _m, e: e),
            renderer,
        ],
        logger_factory=_line_logger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
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
    handler.setFormatter(formatter)
    _handler = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter that would otherwise drown the facts.
    for noisy in ("aiohttp.access", "pika", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True
