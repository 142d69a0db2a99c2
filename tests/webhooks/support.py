"""Helpers for the webhook tests: Twilio-signed requests, rows a test starts from, and
`settle` (apply every stored webhook now, in arrival order, as a worker would)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from twilio.request_validator import RequestValidator

from shared.config import Settings
from shared.deps import Deps
from devtools.twilio_sim.signing import inbound_params, new_sid, status_params
from webhooks import service

SIGNATURE = "X-Twilio-Signature"


@dataclass
class Answer:
    status: int
    text: str
    content_type: str


def sign(token: str, url: str, params: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, params)


async def post_form(http: aiohttp.ClientSession, path: str, params: dict[str, str], *,
                    signature: str | None = None, headers: dict[str, str] | None = None) -> Answer:
    all_headers = dict(headers or {})
    if signature is not None:
        all_headers[SIGNATURE] = signature
    async with http.post(path, data=params, headers=all_headers) as response:
        return Answer(response.status, await response.text(), response.content_type)


async def post_signed(http: aiohttp.ClientSession, settings: Settings, path: str, params: dict[str, str], *,
                      token: str | None = None) -> Answer:
    """POST `params` to `path` signed as Twilio signs: PUBLIC_BASE_URL + path + query."""
    url = settings.public_base_url + path
    return await post_form(http, path, params, signature=sign(token or settings.twilio_auth_token, url, params))


async def send_status(http: aiohttp.ClientSession, settings: Settings, *, message_id: int | None, sid: str,
                      status: str, error_code: int | None = None, to: str = "+16465551234",
                      from_: str = "+16465550100") -> Answer:
    params = status_params(account_sid=settings.twilio_account_sid, sid=sid, to=to, from_=from_,
                           status=status, error_code=error_code)
    path = "/twilio/status" + (f"?m={message_id}" if message_id is not None else "")
    return await post_signed(http, settings, path, params)


async def send_inbound(http: aiohttp.ClientSession, settings: Settings, *, from_: str, to: str, body: str,
                       sid: str | None = None) -> Answer:
    params = inbound_params(account_sid=settings.twilio_account_sid, from_=from_, to=to, body=body,
                            sid=sid or new_sid())
    return await post_signed(http, settings, "/twilio/inbound", params)


async def add_lead(pool: Any, firm_id: int, phone: str, *, external_id: str, name: str = "Lead",
                   signed_up_at: datetime | None = None) -> int:
    return await pool.fetchval(
        """
        INSERT INTO leads (firm_id, external_id, name, phone_raw, phone_e164, phone_status, signed_up_at)
        VALUES ($1, $2, $3, $4, $4, 'valid', $5) RETURNING id
        """,
        firm_id, external_id, name, phone, signed_up_at or datetime.now(timezone.utc),
    )


async def add_outbound(pool: Any, firm_id: int, phone: str, *, status: str = "sending", sid: str | None = None,
                       body: str = "See you at the seminar") -> int:
    """An outbound message as the send pipeline leaves it (claimed; sid stored or not yet)."""
    conversation_id = await pool.fetchval(
        """
        INSERT INTO conversations (firm_id, phone_e164) VALUES ($1, $2)
        ON CONFLICT (firm_id, phone_e164) DO UPDATE SET phone_e164 = EXCLUDED.phone_e164
        RETURNING id
        """,
        firm_id, phone,
    )
    return await pool.fetchval(
        """
        INSERT INTO messages (firm_id, conversation_id, direction, body, sent_by, status, twilio_sid,
                              segments, claimed_at)
        VALUES ($1, $2, 'out', $3, 'user-1', $4, $5, 1, clock_timestamp()) RETURNING id
        """,
        firm_id, conversation_id, body, status, sid,
    )


async def settle(deps: Deps, kind: str = "inbound") -> list[str | None]:
    """Apply every unprocessed inbox row now, oldest first, and return the outcome of every
    inbox row of `kind`. Idempotent with a worker running too: whoever applies a row first
    wins. (Filtering by kind keeps a late simulator callback from an earlier test, which
    lands as `unmatched`, out of an inbound test's assertions.)"""
    rows = await deps.pool.fetch("SELECT id, kind FROM twilio_inbox WHERE processed_at IS NULL ORDER BY id")
    for row in rows:
        apply = service.apply_status if row["kind"] == "status" else service.handle_inbound
        await apply(deps, row["id"])
    rows = await deps.pool.fetch("SELECT outcome FROM twilio_inbox WHERE kind = $1 ORDER BY id", kind)
    return [r["outcome"] for r in rows]


async def message(pool: Any, message_id: int) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)
    return dict(row)


async def flags(pool: Any, firm_id: int, phone: str) -> dict[str, Any] | None:
    row = await pool.fetchrow("SELECT * FROM phone_flags WHERE firm_id = $1 AND phone_e164 = $2", firm_id, phone)
    return dict(row) if row else None


async def flag_events(pool: Any, firm_id: int, phone: str) -> list[tuple[str, str | None]]:
    rows = await pool.fetch(
        "SELECT kind, actor FROM phone_flag_events WHERE firm_id = $1 AND phone_e164 = $2 ORDER BY id",
        firm_id, phone,
    )
    return [(r["kind"], r["actor"]) for r in rows]


async def consent_history(pool: Any, firm_id: int, phone: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT kind, source FROM consent_events WHERE firm_id = $1 AND phone_e164 = $2 ORDER BY id",
        firm_id, phone,
    )
    return [(r["kind"], r["source"]) for r in rows]


async def open_thread(http: aiohttp.ClientSession, pool: Any, firm: Any, phone: str, external_id: str = "t1") -> int:
    """A valid signup with `phone` and its conversation, opened through the portal API."""
    lead_id = await add_lead(pool, firm.id, phone, external_id=external_id)
    async with http.post("/v1/conversations", json={"lead_id": lead_id}, headers=firm.headers) as r:
        assert r.status in (200, 201), await r.text()
        return (await r.json())["conversation_id"]


async def post_message(http: aiohttp.ClientSession, firm: Any, conversation_id: int, body: str,
                       user: str = "user-1") -> tuple[int, dict[str, Any]]:
    async with http.post(f"/v1/conversations/{conversation_id}/messages", json={"body": body},
                         headers=firm.user(user)) as r:
        return r.status, await r.json()


class CuttableProxy:
    """A TCP proxy to PostgreSQL that the test can cut, as if the database went away."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        self.server.close()
        for w in self.writers:
            w.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def app_with_cuttable_database(settings: Settings, services: Any, deps: Deps,
                                     broker: Any) -> AsyncIterator[tuple[Settings, CuttableProxy]]:
    """The real app on its own port, reaching PostgreSQL through a proxy the test can cut.

    Yields (the app's settings, the proxy); skips where PostgreSQL is on a unix socket.
    """
    import pytest

    from shared.app import create_app
    from shared.db import create_pool
    from tests.support import free_port, serve_app

    parts = urlsplit(services.database_url)
    if parts.hostname is None:
        pytest.skip("PostgreSQL is reached over a unix socket here")
    proxy = CuttableProxy(parts.hostname, parts.port or 5432)
    proxy_port = await proxy.start()
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy_port}"
    dsn = urlunsplit((parts.scheme, f"{netloc[0]}@{host}" if len(netloc) == 2 else host, parts.path, parts.query, ""))
    port = free_port()
    down_settings = settings.replace(public_base_url=f"http://127.0.0.1:{port}", port=port)
    down_pool = await create_pool(dsn, max_size=2)
    app = create_app(down_settings, deps=Deps(settings=down_settings, pool=down_pool, redis=deps.redis, twilio=None),
                     broker=broker)
    try:
        async with serve_app(app, port=port):
            yield down_settings, proxy
    finally:
        down_pool.terminate()
