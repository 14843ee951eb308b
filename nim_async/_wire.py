"""How a request reaches the network: its transport, its headers, its signature, its timeouts.

The client builds ``httpx.Request`` objects and hands them straight to an
httpx transport: the default one (aiohttp's pool, `AiohttpTransport`), the
emulator's, or any ``httpx.AsyncBaseTransport`` a user passes. It does not go
through ``httpx.AsyncClient.send``, whose cookie jar, redirect handling and
auth flow apply to nothing NIM answers and cost more CPU per call than the
transport itself (about 300 µs against aiohttp's 250-350 µs, measured over
loopback).
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import AsyncIterable, Callable, Mapping
from typing import IO
from urllib.request import getproxies

import httpx

from ._transport import AiohttpTransport, FormRequest

__all__ = ["Wire", "default_routes", "environment_proxies"]

# As httpx.AsyncClient asks (httpx decodes both); HTTP/1.1 keeps connections
# alive without a Connection header.
_ACCEPT_ENCODING = ("Accept-Encoding", "gzip, deflate")
# A URL, its Host header and its transport.
_Known = tuple[httpx.URL, tuple[str, str], httpx.AsyncBaseTransport]
# More URLs than a client's actions times its hosts: someone else's URLs; start afresh.
_MAX_HOSTS = 1024


class Wire:
    """The transports of one client, and the requests it sends through them.

    Args:
        transport: Where requests go unless a proxy route matches.
        routes: (URL pattern, transport) pairs for the environment's proxies,
            in httpx's pattern syntax (``"https://"``, ``"all://*example.com"``).
        timeout: The timeouts of each request's phases.
        signature: A fresh set of signing headers; called for every request built.
        user_agent: The ``User-Agent`` header.
    """

    __slots__ = (
        "_chosen",
        "_hosts",
        "_routes",
        "_signature",
        "_static",
        "_timeout",
        "_timeouts",
        "transport",
    )

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        routes: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        timeout: httpx.Timeout,
        signature: Callable[[], list[tuple[str, str]]],
        user_agent: str,
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self._signature = signature
        self._routes = sorted(
            ((_Pattern(pattern), route) for pattern, route in (routes or {}).items()),
            key=lambda pair: pair[0].priority,
        )
        self._chosen: dict[tuple[str, str, int | None], httpx.AsyncBaseTransport] = {}
        # Headers as text: what aiohttp takes, and httpx encodes as it would bytes.
        self._static = [_ACCEPT_ENCODING, ("User-Agent", user_agent)]
        # The Host header and transport of each URL requests go to (Hosts keeps
        # one URL object per action and host), keyed by identity: hashing an
        # httpx.URL formats it, and httpx.Request copies it.
        self._hosts: dict[int, _Known] = {}

    @property
    def timeout(self) -> httpx.Timeout:
        """The timeouts of each request's phases."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: httpx.Timeout) -> None:
        self._timeout = value
        self._timeouts = value.as_dict()

    def transport_for(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        """The transport for ``url``: the most specific proxy route that matches, or the default."""
        key = (url.scheme, url.host, url.port)
        chosen = self._chosen.get(key)
        if chosen is None:
            matching = (route for pattern, route in self._routes if pattern.matches(url))
            chosen = self._chosen[key] = next(matching, self.transport)
        return chosen

    def _known(self, url: httpx.URL) -> _Known:
        known = self._hosts.get(id(url))
        if known is None or known[0] is not url:
            if len(self._hosts) >= _MAX_HOSTS:
                self._hosts.clear()
            known = (url, ("Host", _host(url)), self.transport_for(url))
            self._hosts[id(url)] = known
        return known

    def transport_at(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        """`transport_for`, remembered for the very ``url`` object (not a copy of it)."""
        return self._known(url)[2]

    def form_request(
        self,
        url: httpx.URL,
        content: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        length: int,
    ) -> httpx.Request:
        """A signed POST of a form body: bytes, or pieces with their total ``length``."""
        extensions = {"timeout": self._timeouts}
        headers = [
            self._known(url)[1],
            *self._static,
            *self._signature(),
            ("Content-Type", content_type),
            ("Content-Length", str(length)),
        ]
        if isinstance(content, bytes):
            return FormRequest(url, headers, content, extensions)
        return httpx.Request(
            "POST", url, headers=_utf8(headers), content=content, extensions=extensions
        )

    def multipart_request(
        self, url: httpx.URL, fields: dict[str, str], files: dict[str, tuple[str, IO[bytes]]]
    ) -> httpx.Request:
        """A signed multipart POST: httpx encodes the fields and streams the files."""
        headers = _utf8([*self._static, *self._signature()])
        extensions = {"timeout": self._timeouts}
        return httpx.Request(
            "POST", url, headers=headers, data=fields, files=files, extensions=extensions
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the answer's body is left to stream.

        Raises:
            httpx.HTTPError: As the transport raises it.
        """
        return await self.transport_for(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        """Close every transport (each connection pool) once."""
        closing = {id(self.transport): self.transport}
        closing |= {id(route): route for _, route in self._routes}
        for transport in closing.values():
            await transport.aclose()


def _utf8(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    # httpx encodes text headers as ASCII and refuses the rest; aiohttp writes UTF-8.
    return [(name.encode(), value.encode()) for name, value in headers]


def _host(url: httpx.URL) -> str:
    # What httpx.Request puts in Host: the port only when it is not the scheme's default.
    return url.netloc.decode("ascii")


class _Pattern:
    """A proxy key as httpx matches one: ``scheme://host:port``, ``all`` and ``*`` as wildcards."""

    __slots__ = ("host", "host_regex", "port", "scheme")

    def __init__(self, pattern: str) -> None:
        url = httpx.URL(pattern)
        self.scheme = "" if url.scheme == "all" else url.scheme
        self.host = "" if url.host == "*" else url.host
        self.port = url.port
        self.host_regex: re.Pattern[str] | None
        if not self.host:
            self.host_regex = None
        elif self.host.startswith("*."):  # www.example.com, not example.com
            self.host_regex = re.compile(f"^.+\\.{re.escape(self.host[2:])}$")
        elif self.host.startswith("*"):  # example.com and www.example.com
            self.host_regex = re.compile(f"^(.+\\.)?{re.escape(self.host[1:])}$")
        else:
            self.host_regex = re.compile(f"^{re.escape(self.host)}$")

    @property
    def priority(self) -> tuple[int, int, int]:
        # A port first, then the longer host, then the longer scheme.
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def matches(self, url: httpx.URL) -> bool:
        if self.scheme and self.scheme != url.scheme:
            return False
        if self.host_regex is not None and not self.host_regex.match(url.host):
            return False
        return self.port is None or self.port == url.port


def default_routes(
    verify: ssl.SSLContext | None, max_connections: int
) -> tuple[AiohttpTransport, dict[str, httpx.AsyncBaseTransport]]:
    """The default transport, and the routes through the environment's proxies.

    A proxied URL goes through httpx's own proxy transport (HTTP and HTTPS
    proxies, and SOCKS with httpx's ``socks`` extra), as ``httpx.AsyncClient``
    would send it; every other URL, ``NO_PROXY``'s included, goes direct.

    Raises:
        ValueError: A proxy URL the environment names cannot be used.
    """
    direct = AiohttpTransport(verify=verify, max_connections=max_connections)
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    routes: dict[str, httpx.AsyncBaseTransport] = {}
    for pattern, proxy in environment_proxies().items():
        if proxy is None:
            routes[pattern] = direct
            continue
        try:
            routes[pattern] = httpx.AsyncHTTPTransport(
                proxy=proxy, verify=True if verify is None else verify, limits=limits
            )
        except (ValueError, ImportError, httpx.InvalidURL) as exc:
            raise ValueError(f"{pattern} {proxy!r}: {exc}") from None
    return direct, routes


def environment_proxies() -> dict[str, str | None]:
    """The proxies the environment names, as httpx reads them: URL pattern → proxy URL.

    ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``ALL_PROXY`` map ``http://``,
    ``https://`` and ``all://``; each ``NO_PROXY`` entry maps a pattern to
    None (a direct connection); ``NO_PROXY=*`` turns every proxy off. This is
    httpx's own reading (curl's rules), which ``httpx.AsyncClient`` applies
    only when it creates its transport itself.
    """
    info = getproxies()
    patterns: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        if info.get(scheme):
            url = info[scheme]
            patterns[f"{scheme}://"] = url if "://" in url else f"http://{url}"
    for host in (entry.strip() for entry in info.get("no", "").split(",")):
        if host == "*":
            return {}
        if not host:
            continue
        if "://" in host:
            patterns[host] = None
        elif _is_ipv4(host) or host.lower() == "localhost":
            patterns[f"all://{host}"] = None
        elif _is_ipv6(host):
            patterns[f"all://[{host}]"] = None
        else:
            patterns[f"all://*{host}"] = None
    return patterns


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host.split("/")[0])
    except ValueError:
        return False
    return True


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host.split("/")[0])
    except ValueError:
        return False
    return True
