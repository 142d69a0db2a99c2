"""One HTTP attempt of a delivery: POST, `WEBHOOK_TIMEOUT_S` (15) in all, no redirects,
a bounded read.

The session is one per process and event loop, with the guard's resolver (a name is
checked on the addresses it resolves to, at connect time) and no cookie jar. What comes
back is an `Attempt`: the outcome word the log keeps, the status, the time it took, the
first bytes of the response, and a `Retry-After` if the receiver gave one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from outbound import guard

EXCERPT_BYTES = 1024
CONNECTIONS_PER_HOST = 4  # two lanes per endpoint; a little room for a replay

_sessions: dict[tuple[int, bool], aiohttp.ClientSession] = {}
# tests: a resolver under the guard (a name that resolves to loopback)
base_resolver: AbstractResolver | None = None


@dataclass(frozen=True)
class Attempt:
    outcome: str  # delivered | http_error | timeout | connect_error | address_not_allowed
    status_code: int | None
    duration_ms: int
    excerpt: str | None
    retry_after_s: float | None = None


def session(allow_private: bool) -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    key = (id(loop), allow_private)
    found = _sessions.get(key)
    if found is None or found.closed:
        connector = aiohttp.TCPConnector(resolver=guard.GuardedResolver(allow_private=allow_private,
                                                                        base=base_resolver),
                                         limit=0, limit_per_host=CONNECTIONS_PER_HOST, ttl_dns_cache=10)
        found = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                      auto_decompress=False)
        _sessions[key] = found
    return found


async def close_sessions() -> None:
    for s in list(_sessions.values()):
        await s.close()
    _sessions.clear()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


async def post(url: str, body: str, headers: dict[str, str], *, allow_private: bool, timeout_s: float) -> Attempt:
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    host = urlsplit(url).hostname or ""
    literal = guard.literal_address(host)
    if not allow_private and literal is not None and not guard.address_allowed(literal):
        return Attempt("address_not_allowed", None, 0, f"{literal} is not a public address")
    try:
        async with session(allow_private).post(url, data=body.encode("utf-8"), headers=headers,
                                               allow_redirects=False,
                                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            raw = await resp.content.read(EXCERPT_BYTES)
            excerpt = raw.decode("utf-8", "replace")
            outcome = "delivered" if 200 <= resp.status < 300 else "http_error"
            return Attempt(outcome, resp.status, took(), excerpt or None,
                           parse_retry_after(resp.headers.get("Retry-After")))
    except asyncio.TimeoutError:
        return Attempt("timeout", None, took(), f"no response within {timeout_s:g} s")
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, guard.AddressNotAllowed):
            return Attempt("address_not_allowed", None, took(), str(exc.os_error)[:200])
        return Attempt("connect_error", None, took(), f"{type(exc.os_error).__name__}: {exc.os_error}"[:200])
    except guard.AddressNotAllowed as exc:
        return Attempt("address_not_allowed", None, took(), str(exc)[:200])
    except (aiohttp.ClientError, OSError) as exc:
        return Attempt("connect_error", None, took(), f"{type(exc).__name__}: {exc}"[:200])
