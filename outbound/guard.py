"""The SSRF guard: which URLs and which resolved addresses an outbound webhook may reach.

Only http(s). A literal address is checked at registration and before every attempt; a
host name is checked where it matters, at connect time, by `GuardedResolver`: every
address the name resolves to must be public, or the connection is refused (so a name
that later resolves to 127.0.0.1 or 169.254.169.254 reaches nothing). Redirects are
never followed (outbound/client.py). `WEBHOOKS_ALLOW_PRIVATE=1` lifts the address rule
(tests, the demo), never the scheme rule.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from shared.errors import PermanentError

MAX_URL_LENGTH = 2000


class UrlNotAllowed(PermanentError):
    code = "url_not_allowed"


class AddressNotAllowed(OSError):
    """A host resolved only to addresses the guard refuses (raised at connect time)."""


def address_allowed(address: str) -> bool:
    """A public unicast address: not loopback, private, link-local (the cloud metadata
    address 169.254.169.254 is link-local), unspecified, multicast or reserved."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified
                or ip.is_multicast or ip.is_reserved or not ip.is_global)


def literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def check_url(url: Any, *, allow_private: bool) -> str:
    """The URL, stripped, if an endpoint may have it; else `UrlNotAllowed` saying why."""
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"url must be an http(s) URL of at most {MAX_URL_LENGTH} characters.")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlNotAllowed("url must start with http:// or https:// and name a host.")
    if parts.username or parts.password:
        raise UrlNotAllowed("url must not carry credentials.")
    try:
        parts.port
    except ValueError:
        raise UrlNotAllowed("url has an invalid port.") from None
    literal = literal_address(parts.hostname)
    if not allow_private and literal is not None and not address_allowed(literal):
        raise UrlNotAllowed("url points at a loopback, private, link-local or otherwise non-public address.")
    name = parts.hostname.lower().rstrip(".")
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise UrlNotAllowed("url points at a loopback, private, link-local or otherwise non-public address.")
    return url


class GuardedResolver(AbstractResolver):
    """Resolves with `base` (aiohttp's default unless given: the tests' seam for a name
    that resolves to loopback) and keeps only allowed addresses; none left → refused."""

    def __init__(self, *, allow_private: bool, base: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self.base = base or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self.base.resolve(host, port, family)
        if self.allow_private:
            return found
        allowed = [r for r in found if address_allowed(r["host"])]
        if not allowed:
            raise AddressNotAllowed(f"{host} resolves only to addresses outbound webhooks may not reach")
        return allowed

    async def close(self) -> None:
        await self.base.close()


class StaticResolver(AbstractResolver):
    """Names to fixed addresses (tests: a name that resolves to loopback)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        address = self.names.get(host)
        if address is None:
            raise OSError(f"unknown host {host}")
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None
