"""Web plumbing: JSON errors, the /v1 auth middleware, request ids, body parsing, health.

Every error a client sees is `{"error": "<sentence>", "code": "<machine_code>"}`; never
HTML, never a traceback. Domain routes raise `HttpError` (or let `AppError`s through).
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from typing import Any, Awaitable, Callable

import asyncpg
import redis.exceptions
import structlog
from aiohttp import web

from shared.deps import Deps
from shared.errors import HttpError, NotFound, PermanentError, TransientError
from shared.twilio import TwilioError

log = structlog.get_logger(__name__)

DEPS = web.AppKey("deps", Deps)
BROKER = web.AppKey("broker", object)
# (app, presented API key) -> the firm id, or None for a key that is not valid. Firms own
# keys (firms/auth.py); composition hands the authenticator to `base_app`.
Authenticator = Callable[[web.Application, str], Awaitable["int | None"]]
AUTHENTICATOR = web.AppKey("authenticator", object)
FIRM_ID = web.RequestKey("firm_id", int)  # set by auth_middleware on every /v1 request
# /v1 paths that authenticate themselves instead of by API key (a stream takes a short-lived
# token in its query, since browsers cannot set headers on an EventSource)
OPEN_PATHS = web.AppKey("open_paths", set)

MAX_BODY_BYTES = 64 * 1024
# Let over-long request lines reach our handlers, which answer them with a JSON 4xx;
# aiohttp's own limit (8190) would answer a plain-text 400 before any middleware runs.
HANDLER_ARGS = {"max_line_size": 64 * 1024, "max_field_size": 16 * 1024}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=lambda o: json.dumps(o, default=_default))


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return json_response({"error": message, "code": code, **extra}, status=status, headers=headers)


_AIOHTTP_CODES = {
    400: ("bad_request", "The request could not be read."),
    401: ("unauthorized", "A valid API key is required."),
    403: ("forbidden", "This request is not allowed."),
    404: ("not_found", "No such resource."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("body_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes."),
    415: ("unsupported_media_type", "Send JSON with Content-Type: application/json."),
}

UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers or None, **exc.extra)
    except TwilioError as exc:  # its .code is Twilio's number, not one of our words
        log.warning("twilio_error_in_request", kind=exc.kind, twilio_code=exc.code, status=exc.status)
        if exc.kind == "permanent":
            return error_response(502, "twilio_error", "Twilio refused the request.", twilio_code=exc.code)
        return error_response(503, "twilio_unavailable", "Twilio could not be reached. Try again shortly.",
                              {"Retry-After": "1"})
    except NotFound as exc:
        return error_response(404, exc.code, exc.message or "No such resource.")
    except PermanentError as exc:
        return error_response(400, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _AIOHTTP_CODES.get(exc.status, ("http_error", exc.reason))
        return error_response(exc.status, code, message)
    except UNAVAILABLE as exc:
        log.warning("dependency_unavailable", error=type(exc).__name__, path=request.path)
        return error_response(503, "unavailable", "A backing service is unavailable. Try again shortly.",
                              {"Retry-After": "1"})
    except TransientError as exc:
        return error_response(503, exc.code, exc.message or "Try again shortly.", {"Retry-After": "1"})
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled_error", path=request.path, method=request.method)
        return error_response(500, "internal", "Something went wrong on our side.")


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response = await handler(request)
    response.headers["X-Request-Id"] = request_id
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/") or request.path in request.app[OPEN_PATHS]:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HttpError(401, "unauthorized", "Send your API key as 'Authorization: Bearer <key>'.")
    firm_id = await request.app[AUTHENTICATOR](request.app, key.strip())
    if firm_id is None:
        raise HttpError(401, "unauthorized", "That API key is not valid.")
    request[FIRM_ID] = firm_id
    structlog.contextvars.bind_contextvars(firm_id=firm_id)
    return await handler(request)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 4xx `HttpError` saying what is wrong."""
    ctype = request.content_type
    if ctype not in ("application/json", "") and not ctype.endswith("+json"):
        raise HttpError(415, "unsupported_media_type", "Send JSON with Content-Type: application/json.")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise HttpError(413, "body_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    raw = await request.read()  # aiohttp enforces client_max_size while reading
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "invalid_utf8", "The request body is not valid UTF-8.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HttpError(400, "invalid_json", f"The request body is not valid JSON ({exc.msg}).") from None
    except RecursionError:
        raise HttpError(400, "invalid_json", "The request body nests too deeply.") from None
    except ValueError:  # e.g. an integer longer than Python converts (4300 digits)
        raise HttpError(400, "invalid_json", "The request body holds a number too long to read.") from None
    if not isinstance(data, dict):
        raise HttpError(400, "invalid_json", "The request body must be a JSON object.")
    return data


MAX_BIGINT = 2**63 - 1


def parse_id(raw: str | None) -> int | None:
    """A positive bigint written in ASCII digits, else None.

    `str.isdigit` alone is not enough: it accepts '²', which `int()` refuses.
    """
    if raw is None:
        return None
    raw = raw.strip()
    if not raw or len(raw) > 19 or not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_BIGINT else None


def query_limit(request: web.Request, default: int, maximum: int) -> int:
    """`?limit=`: a whole number from 1 to `maximum` (`default` when absent), else 400."""
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return default
    value = parse_id(raw)
    if value is None or value > maximum:
        raise HttpError(400, "invalid_limit", f"limit must be a whole number from 1 to {maximum}.")
    return value


def path_id(request: web.Request, name: str = "id") -> int:
    value = parse_id(request.match_info[name])
    if value is None:
        raise HttpError(404, "not_found", "No such resource.")
    return value


def user_id(request: web.Request) -> str:
    value = request.headers.get("X-User-Id", "").strip()
    if not value:
        raise HttpError(400, "missing_user", "Send the portal user's id in the X-User-Id header.")
    if len(value) > 200:
        raise HttpError(400, "bad_user", "X-User-Id must be at most 200 characters.")
    return value


async def healthz(request: web.Request) -> web.Response:
    return json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    down: list[str] = []

    async def check_db() -> None:
        async with deps.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1", timeout=2)

    async def check_redis() -> None:
        await asyncio.wait_for(deps.redis.ping(), 2)

    async def check_broker() -> None:
        from shared.broker import ping

        broker = request.app.get(BROKER)
        if broker is not None:
            await asyncio.wait_for(asyncio.to_thread(ping, broker), 3)

    for name, check in (("database", check_db), ("redis", check_redis), ("broker", check_broker)):
        try:
            await check()
        except Exception as exc:
            log.warning("readiness_check_failed", dependency=name, error=type(exc).__name__)
            down.append(name)
    if down:
        return error_response(503, "not_ready", f"Not ready: {', '.join(down)} unreachable.", down=down)
    return json_response({"ok": True})


# (app, host, port): one listener of `serve`.
Listener = tuple[web.Application, str, int]


async def serve(listeners: list[Listener], *, shutdown_timeout: float = 5.0,
                stop: asyncio.Event | None = None) -> None:
    """Serve each app on its host and port until SIGINT/SIGTERM (or `stop` is set).

    `leadsms web` runs this instead of `web.run_app`: run_app takes no `handler_args`
    (it forwards the dict as one unknown keyword, so every connection logs "Failed to
    create request handler with custom kwargs" and the raised limits never apply).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runners: list[web.AppRunner] = []
    try:
        for app, host, port in listeners:
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout, **HANDLER_ARGS)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, port).start()
            log.info("web_listening", host=host, port=port)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def base_app(authenticate: Authenticator) -> web.Application:
    """The app with the middlewares and health routes; `/v1` requests are authenticated
    by `authenticate`."""
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[request_context_middleware, error_middleware, auth_middleware],
    )
    app[AUTHENTICATOR] = authenticate
    app[OPEN_PATHS] = set()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
