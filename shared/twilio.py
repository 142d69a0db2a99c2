"""The one Twilio client: the real twilio SDK, optionally pointed at another base URL.

Why a subclass of the SDK's `AsyncTwilioHttpClient` rather than raw HTTP: the product must
behave exactly as it will against Twilio (URLs, form encoding, paging, error parsing), and
the simulator is only worth something if the real SDK is what talks to it. twilio 9.x has
no base-URL setting, so `_RoutedHttpClient` rewrites the scheme and host of every
`*.twilio.com` URL to `TWILIO_BASE_URL` (path and query kept).

Every failure becomes one of three typed errors, because the send pipeline's "sends
happen once" rule depends on the difference:

- `TwilioNotReceived` (429, connection refused): Twilio never took it; retry freely.
- `TwilioAmbiguous` (timeout, 5xx, connection lost mid-request): Twilio may have it;
  check its Messages list before any retry.
- `TwilioPermanent` (other 4xx): retrying cannot help.

The SDK's own retry layer stays off: a blind retry of an ambiguous send is a duplicate SMS.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Literal, Mapping, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from shared.errors import AppError, PermanentError, TransientError

log = structlog.get_logger(__name__)

Kind = Literal["not_received", "ambiguous", "permanent"]
T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0


# ---- errors ------------------------------------------------------------------------------

class TwilioError(AppError):
    """A failed Twilio call. `code` is Twilio's error code (21614, 20429...) when known,
    `status` the HTTP status when there was one, `detail` Twilio's message."""

    kind: Kind = "ambiguous"

    def __init__(self, detail: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.code = code  # type: ignore[assignment]  # Twilio's numeric code, not AppError's slug
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        parts = [self.kind]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        return f"Twilio {', '.join(parts)}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(detail={self.detail!r}, code={self.code!r}, status={self.status!r})"


class TwilioNotReceived(TwilioError, TransientError):
    """Twilio did not take the request (429, connection refused): safe to retry."""

    kind: Kind = "not_received"


class TwilioAmbiguous(TwilioError, TransientError):
    """Timeout or 5xx: Twilio may have acted on it; look before retrying a send."""

    kind: Kind = "ambiguous"


class TwilioPermanent(TwilioError, PermanentError):
    """A 4xx other than 429 (21610 unsubscribed, 21614 not mobile, 21211 invalid, 20003 auth)."""

    kind: Kind = "permanent"


def error_for_status(status: int | None, detail: str, code: int | None = None) -> TwilioError:
    """The typed error for an HTTP answer; no status means we cannot tell (ambiguous)."""
    if status == 429:
        return TwilioNotReceived(detail, code=code, status=status)
    if status is not None and 400 <= status < 500:
        return TwilioPermanent(detail, code=code, status=status)
    return TwilioAmbiguous(detail, code=code, status=status)


_SDK_PREFIXES = ("Unable to create record: ", "Unable to fetch record: ", "Unable to update record: ")


def _from_sdk(exc: TwilioException) -> TwilioError:
    if isinstance(exc, TwilioRestException):
        detail = str(exc.msg or "")
        for prefix in _SDK_PREFIXES:
            if detail.startswith(prefix):
                detail = detail[len(prefix):]
        return error_for_status(exc.status, detail, _int_or_none(exc.code))
    if isinstance(exc, TwilioServiceException):
        return error_for_status(exc.status, exc.detail or exc.title or "", _int_or_none(exc.code))
    # Page loading raises a bare TwilioException("Unable to fetch page", response).
    response = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], Response) else None
    if response is None:
        return TwilioAmbiguous(str(exc) or type(exc).__name__)
    code, detail = None, str(exc.args[0])
    try:
        body = json.loads(response.text)
        code, detail = _int_or_none(body.get("code")), body.get("message") or detail
    except (ValueError, AttributeError):
        pass
    return error_for_status(response.status_code, detail, code)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _from_transport(exc: BaseException) -> TwilioError:
    """Map aiohttp/asyncio failures: refused or connect timeout → nothing was sent."""
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return TwilioNotReceived(f"could not connect to Twilio: {exc}")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return TwilioAmbiguous("Twilio did not answer in time")
    return TwilioAmbiguous(f"connection to Twilio failed mid-request: {type(exc).__name__}: {exc}")


# ---- HTTP client -------------------------------------------------------------------------

def rewrite_twilio_url(url: str, base_url: str | None) -> str:
    """Send a `*.twilio.com` URL to `base_url`'s scheme and host, keeping path and query."""
    if not base_url:
        return url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host != "twilio.com" and not host.endswith(".twilio.com"):
        return url
    base = urlsplit(base_url)
    prefix = base.path.rstrip("/")
    return urlunsplit((base.scheme, base.netloc, prefix + parts.path, parts.query, parts.fragment))


class _RoutedHttpClient(AsyncTwilioHttpClient):
    """The SDK's async HTTP client with a base-URL rewrite, one pooled session, a real
    timeout and no retries.

    `request` is overridden wholesale because the parent ignores its own `timeout`, builds
    a deprecated `aiohttp.BasicAuth` per call and logs each request at INFO with the
    recipient's number in the URL. Must be built inside a running loop (it owns a
    `ClientSession`).
    """

    def __init__(self, base_url: str | None, timeout: float, max_connections: int = 100) -> None:
        # pool_connections=False: the parent would open a session of its own; max_retries
        # None: no aiohttp_retry wrapper (the SDK's retry layer stays off).
        super().__init__(pool_connections=False, timeout=timeout, max_retries=None)
        self.base_url = base_url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        self._auth_headers: dict[tuple[str, str], str] = {}

    def _authorization(self, auth: tuple[str, str]) -> str:
        header = self._auth_headers.get(auth)
        if header is None:
            header = self._auth_headers[auth] = aiohttp.encode_basic_auth(auth[0], auth[1])
        return header

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if timeout is not None and timeout <= 0:
            raise ValueError(timeout)
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = self._authorization(auth)
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        async with self.session.request(
            method.upper(),
            rewrite_twilio_url(url, self.base_url),
            params=params,
            data=data,
            headers=headers,
            allow_redirects=allow_redirects,
            **kwargs,
        ) as response:
            text = await response.text()
            return Response(response.status, text, response.headers)

    async def close(self) -> None:
        if self.session is not None and not self.session.closed:
            await self.session.close()


# ---- results -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str
    num_segments: int | None
    date_created: datetime | None
    from_: str | None = None  # None when a Messaging Service has not chosen a sender yet


@dataclass(frozen=True)
class MessageRecord:
    sid: str
    to: str
    from_: str
    body: str
    status: str
    date_created: datetime | None


@dataclass(frozen=True)
class LineTypeResult:
    phone_e164: str
    valid: bool
    line_type: str | None
    carrier: str | None
    raw: dict


_LOOKUP_FIELDS = (
    "calling_country_code", "country_code", "phone_number", "national_format", "valid",
    "validation_errors", "line_type_intelligence", "url",
)


# ---- the client --------------------------------------------------------------------------

class TwilioClient:
    """Send, list and look up through the twilio SDK; every failure a typed `TwilioError`.

    One instance per process and loop: it holds one pooled aiohttp session, reused by
    every call (building an SDK client per message would cost a connection per message).
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_connections: int = 100,
    ) -> None:
        self.account_sid = account_sid
        self.base_url = base_url
        self._http = _RoutedHttpClient(base_url, timeout, max_connections)
        self._owns_http = True
        self._accounts: dict[tuple[str, str], TwilioClient] = {}
        self._client = self._sdk_client(account_sid, auth_token)

    def _sdk_client(self, account_sid: str, auth_token: str) -> Client:
        # The explicit (empty) edge/region keep the SDK from reading os.environ for them:
        # configuration comes from Settings only.
        return Client(
            account_sid, auth_token, http_client=self._http,
            environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
        )

    def for_account(self, account_sid: str | None, auth_token: str | None) -> "TwilioClient":
        """The client for a firm's own subaccount (this one when None): same pooled HTTP
        session, that account's credentials. Kept per (sid, token), so a changed token
        gets a new client."""
        if not account_sid or account_sid == self.account_sid or not auth_token:
            return self
        key = (account_sid, auth_token)
        client = self._accounts.get(key)
        if client is None:
            client = object.__new__(TwilioClient)
            client.account_sid, client.base_url = account_sid, self.base_url
            client._http, client._owns_http, client._accounts = self._http, False, {}
            client._client = self._sdk_client(account_sid, auth_token)
            if len(self._accounts) > 1000:
                self._accounts.clear()
            self._accounts[key] = client
        return client

    @classmethod
    def from_settings(cls, settings: Any, *, timeout: float | None = None) -> "TwilioClient":
        """Build from `Settings` (`TWILIO_TIMEOUT_S` unless `timeout` is given); call inside
        the running loop that will use it."""
        settings.require("twilio_account_sid", "twilio_auth_token")
        return cls(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            base_url=settings.twilio_base_url,
            timeout=float(settings.twilio_timeout_s) if timeout is None else timeout,
        )

    async def _call(self, operation: str, make: Callable[[], Awaitable[T]]) -> T:
        try:
            return await make()
        except TwilioException as exc:
            error = _from_sdk(exc)
            cause: BaseException = exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error = _from_transport(exc)
            cause = exc
        log.debug("twilio_call_failed", operation=operation, kind=error.kind,
                  status=error.status, code=error.code)
        raise error from cause

    async def send_message(self, *, to: str, from_: str | None, body: str, status_callback: str | None,
                           messaging_service_sid: str | None = None,
                           validity_period: int | None = None) -> SentMessage:
        """Create a message from `from_`, or through a Messaging Service (which picks the
        sender). Raises `TwilioNotReceived`, `TwilioAmbiguous` or `TwilioPermanent`.

        `validity_period` (seconds, 1..36000): Twilio drops the message if it is still in
        its queue that long after the request."""
        extra: dict[str, Any] = {}
        if status_callback is not None:
            extra["status_callback"] = status_callback
        if messaging_service_sid:
            extra["messaging_service_sid"] = messaging_service_sid
        else:
            extra["from_"] = from_
        if validity_period is not None:
            extra["validity_period"] = validity_period
        msg = await self._call(
            "send_message",
            lambda: self._client.messages.create_async(to=to, body=body, **extra),
        )
        return SentMessage(
            sid=msg.sid,
            status=msg.status or "queued",
            num_segments=_int_or_none(msg.num_segments),
            date_created=_datetime_or_none(msg.date_created),
            from_=msg.from_ or None,
        )

    async def probe(self) -> None:
        """The cheapest authenticated call (a Messages list, PageSize=1): raises when
        Twilio refuses this account's credentials."""
        await self._call("probe", lambda: self._client.messages.list_async(limit=1, page_size=1))

    async def list_messages(self, *, to: str, from_: str | None, limit: int = 50) -> list[MessageRecord]:
        """Recent messages to `to` (from `from_` when given), newest first (Twilio's
        order), at most `limit`."""
        filters: dict[str, Any] = {"from_": from_} if from_ else {}
        messages = await self._call(
            "list_messages",
            lambda: self._client.messages.list_async(to=to, limit=limit, **filters),
        )
        return [
            MessageRecord(
                sid=m.sid,
                to=m.to or "",
                from_=m.from_ or "",
                body=m.body or "",
                status=m.status or "",
                date_created=_datetime_or_none(m.date_created),
            )
            for m in messages
        ]

    async def delete_message(self, sid: str) -> bool:
        """Messages DELETE (erasure): True when deleted now, False when Twilio has no such
        message any more (deleted before: the same outcome). Other errors raise."""
        try:
            await self._call("delete_message", lambda: self._client.messages(sid).delete_async())
        except TwilioError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def lookup_line_type(self, phone_e164: str) -> LineTypeResult:
        """Lookup v2 with line_type_intelligence. An invalid number is a result, not an error."""
        number = await self._call(
            "lookup_line_type",
            lambda: self._client.lookups.v2.phone_numbers(phone_e164).fetch_async(
                fields="line_type_intelligence"
            ),
        )
        raw = {name: getattr(number, name, None) for name in _LOOKUP_FIELDS}
        intelligence: Mapping[str, Any] = number.line_type_intelligence or {}  # type: ignore[assignment]
        return LineTypeResult(
            phone_e164=number.phone_number or phone_e164,
            valid=bool(number.valid),
            line_type=intelligence.get("type") if isinstance(intelligence, Mapping) else None,
            carrier=intelligence.get("carrier_name") if isinstance(intelligence, Mapping) else None,
            raw=raw,
        )

    async def close(self) -> None:
        if self._owns_http:
            await self._http.close()

    async def __aenter__(self) -> "TwilioClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _datetime_or_none(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
