"""One HTTP exchange: the form on the wire, the answer read back, httpx's errors translated.

Everything that can go wrong after the request may have left becomes a
``NimError`` that says so: a dropped connection, a broken ``Content-Encoding``,
an answer that is not JSON, too deep, too large, or whose ``code`` is not a
number. Nothing raw from httpx or the JSON decoder leaves this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import quote_plus

import httpx

from ._clock import CURTIME_TOLERANCE, SKEW_TO_CORRECT, ServerClock
from ._deadlines import AttemptDeadline, Deadlines
from ._errors import (
    ClockSkew,
    MalformedAnswer,
    NimAPIError,
    NimConnectionError,
    NimError,
    NimTimeout,
    ParameterError,
    ServerError,
    error_for_code,
)
from ._uploads import Upload
from ._wire import Wire

__all__ = ["MAX_ANSWER_BYTES", "Hosts", "exchange"]

Answer = dict[str, Any]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=utf-8"
# NIM's answers are small (500 unregistered accids are ~20 KB): anything far
# larger is not a NIM answer, and reading it whole could exhaust memory.
MAX_ANSWER_BYTES = 1024 * 1024
# Form values longer than this are escaped and sent piece by piece, so that a
# 15 MB upload (20 MB of base64) is never copied whole again on the way out.
_STREAM_VALUES_OVER = 256 * 1024
_PIECE = 256 * 1024
_UNSAFE = re.compile(rb"[^A-Za-z0-9_.~-]")


def _translated(exc: httpx.HTTPError, action: str) -> NimError:
    """httpx's error as a ``NimConnectionError`` or ``MalformedAnswer``, saying truthfully
    whether the request may have reached the server."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        # Nothing was written to any socket: the request never left.
        return NimTimeout(repr(exc), action=action, may_have_reached_server=False)
    if isinstance(exc, httpx.TimeoutException):
        return NimTimeout(repr(exc), action=action, may_have_reached_server=True)
    if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return NimConnectionError(repr(exc), action=action, may_have_reached_server=False)
    if isinstance(exc, httpx.DecodingError):
        return MalformedAnswer(200, f"the answer could not be decoded: {exc!r}", action)
    # Read/write errors, a peer that hung up mid-answer, proxies: the
    # request may have been received and carried out.
    return NimConnectionError(repr(exc), action=action, may_have_reached_server=True)


def _escape(value: str) -> bytes:
    return _UNSAFE.sub(lambda match: b"%%%02X" % match[0][0], value.encode("utf-8"))


class _LargeForm:
    """A form body with a large value, escaped a piece at a time as httpx sends it."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._fields = fields
        self.length = sum(len(piece) for piece in self._pieces())

    def _pieces(self) -> Iterator[bytes]:
        for index, (name, value) in enumerate(self._fields.items()):
            yield (b"&" if index else b"") + _escape(name) + b"="
            for start in range(0, len(value), _PIECE):
                yield _escape(value[start : start + _PIECE])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces():
            yield piece


# The form's names are a few dozen NIM parameters: each is escaped once.
_ESCAPED_NAMES: dict[str, str] = {}
# quote_plus as one str.translate: its three calls and its list of bytes cost
# more than the escaping itself for the short values most fields hold; past a
# few hundred characters quote_plus's cached quoter is the faster of the two.
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"
_QUOTE_PLUS = {
    byte: "+" if byte == 0x20 else f"%{byte:02X}" for byte in range(256) if byte not in _UNRESERVED
}
_TRANSLATE_UP_TO = 256


def _escaped(text: str) -> str:
    if len(text) > _TRANSLATE_UP_TO:
        return quote_plus(text)
    if text.isascii():
        # Accids, codes and numbers come back as they are.
        return text.translate(_QUOTE_PLUS)
    # Each UTF-8 byte as the one Latin-1 character of the same number.
    return text.encode("utf-8").decode("latin-1").translate(_QUOTE_PLUS)


def _form_body(fields: Mapping[str, str]) -> bytes | None:
    """The url-encoded form, or None if a value is long enough to be streamed."""
    parts = []
    for name, value in fields.items():
        if len(value) > _STREAM_VALUES_OVER:
            return None
        escaped = _ESCAPED_NAMES.get(name)
        if escaped is None:
            escaped = _ESCAPED_NAMES[name] = quote_plus(name)
        parts.append(f"{escaped}={_escaped(value)}")
    # Every character is ASCII now.
    return "&".join(parts).encode("ascii")


def _form_request(wire: Wire, url: httpx.URL, fields: Mapping[str, str]) -> httpx.Request:
    body = _form_body(fields)
    if body is not None:
        return wire.form_request(url, body, content_type=FORM_CONTENT_TYPE, length=len(body))
    large = _LargeForm(fields)
    return wire.form_request(url, large, content_type=FORM_CONTENT_TYPE, length=large.length)


def _headers(response: httpx.Response) -> tuple[str | None, bool]:
    """The answer's ``Date``, and whether it has a ``Content-Encoding``, in one pass.

    From the raw pairs: httpx.Headers' lookups decode every header on each call.
    """
    date: bytes | None = None
    encoded = False
    for key, value in response.headers.raw:
        lowered = key.lower()
        if lowered == b"date":
            if date is None:
                date = value
        elif lowered == b"content-encoding":
            encoded = True
    return (None if date is None else date.decode("latin-1")), encoded


async def _read_capped(response: httpx.Response, action: str, encoded: bool) -> bytes:
    parts: list[bytes] = []
    size = 0
    # httpx decodes a Content-Encoding; a plain answer is read as it comes.
    pieces = response.aiter_bytes() if encoded else response.stream
    async for piece in pieces:  # type: ignore[union-attr]
        size += len(piece)
        if size > MAX_ANSWER_BYTES:
            desc = f"HTTP {response.status_code}: an answer over {MAX_ANSWER_BYTES} bytes"
            raise MalformedAnswer(response.status_code, desc, action)
        parts.append(piece)
    return b"".join(parts)


def _decode(status: int, body: bytes, action: str) -> Answer:
    """Read a NIM answer: its JSON ``code`` decides; any HTTP 5xx is a server error."""
    try:
        try:
            # JSON as NIM sends it, UTF-8, without json.loads's guess at the encoding.
            answer = json.loads(body.decode("utf-8"))
        except ValueError:
            answer = json.loads(body)  # a BOM, UTF-16 or -32: as json.loads reads bytes
    except (ValueError, RecursionError):
        answer = None
    code = answer.get("code") if isinstance(answer, dict) else None
    desc = str(answer.get("desc", "")) if isinstance(answer, dict) else ""
    if status >= 500:
        # A gateway in front of NIM (facts: "HTTP 502/503/504 with an HTML body"),
        # even one that answers JSON such as {"code": 504}: the call may have gone through.
        shown = desc or f"HTTP {status}: {body[:200]!r}"
        return_code = code if isinstance(code, int) and not isinstance(code, bool) else status
        raise ServerError(return_code, shown, action, status=status)
    if status != 200:
        # Not NIM's own answer: a 404 page here means a wrong base_url, not "object not found".
        raise NimAPIError(status, f"HTTP {status} without a NIM answer: {body[:200]!r}", action)
    if not isinstance(code, int) or isinstance(code, bool):
        raise MalformedAnswer(status, f"HTTP 200 without a NIM code: {body[:200]!r}", action)
    if code == 200:
        assert isinstance(answer, dict)
        return answer
    raise error_for_code(code, desc, action)


class Hosts:
    """The ordered base URLs of the service, and the one in use.

    The next one is tried only when the current one could not be reached at
    all (connection refused, a DNS failure, a connect timeout: nothing of the
    request left the machine), never after a request may have reached a
    server; the one that answered stays in use.
    """

    __slots__ = ("_action_urls", "_current", "urls")

    def __init__(self, urls: tuple[httpx.URL, ...]) -> None:
        self.urls = urls
        self._current = 0
        # Joining and parsing a URL per call costs as much as the rest of the
        # request: a host has fifteen actions.
        self._action_urls: dict[tuple[int, str], httpx.URL] = {}

    @property
    def current(self) -> httpx.URL:
        """The base URL calls go to now."""
        return self.urls[self._current]

    def action_url(self, action: str) -> httpx.URL:
        """The URL of ``action`` (``"msg/sendMsg"``) under the current base URL."""
        key = (self._current, action)
        url = self._action_urls.get(key)
        if url is None:
            url = self._action_urls[key] = self.current.join(f"{action}.action")
        return url

    def unreachable(self, url: httpx.URL) -> None:
        """Move past ``url`` if it is still the current one."""
        if self.urls[self._current] == url:
            self._current = (self._current + 1) % len(self.urls)


async def exchange(
    wire: Wire,
    hosts: Hosts,
    clock: ServerClock,
    action: str,
    fields: Mapping[str, str],
    upload: Upload | None,
    *,
    deadlines: Deadlines,
    deadline: float,
) -> Answer:
    """POST one attempt of ``action`` and return its answer (code 200).

    Args:
        wire: The client's transports.
        hosts: Where the service is; an unreachable host is passed over.
        clock: Learns the server's time from each answer's ``Date``.
        action: The NIM action, e.g. ``"msg/sendMsg"``.
        fields: The form's text fields.
        upload: The multipart file part of msg/fileUpload, if any.
        deadlines: Where the attempt's deadline is watched.
        deadline: The longest the whole attempt may take, in seconds: httpx's
            timeouts bound each read, not a server that drips its answer.

    Raises:
        ClockSkew: A 414 whose answer showed the local clock five minutes or
            more off the server's (signatures are corrected from now on).
        NimAPIError: An error code, an HTTP error page, or an unreadable answer.
        NimConnectionError: No answer came back, saying whether the request may
            have reached the server.
    """
    scope = AttemptDeadline()
    deadlines.watch(scope, deadline)
    try:
        async with scope:
            last = len(hosts.urls)
            for tried in range(1, last + 1):
                base = hosts.current
                url = hosts.action_url(action)
                try:
                    if upload is None:
                        request = _form_request(wire, url, fields)
                        return await _send(wire.transport_at(url), request, clock, action)
                    return await _send_upload(wire, url, clock, action, fields, upload)
                except (httpx.ConnectError, httpx.ConnectTimeout):
                    hosts.unreachable(base)
                    if tried == last:
                        raise
            raise AssertionError("unreachable: the loop returns or raises")
    except httpx.HTTPError as exc:
        raise _translated(exc, action) from exc
    except TimeoutError:
        if not scope.expired():
            raise
    finally:
        deadlines.forget(scope)
    # Only the deadline expires this scope: a cancellation from outside goes on up.
    desc = f"no whole answer within {deadline:g} s"
    raise NimTimeout(desc, action=action, may_have_reached_server=True)


async def _send_upload(
    wire: Wire,
    url: httpx.URL,
    clock: ServerClock,
    action: str,
    fields: Mapping[str, str],
    upload: Upload,
) -> Answer:
    with upload.open() as stream:
        files = {"content": (upload.filename, stream)}
        request = wire.multipart_request(url, dict(fields), files)
        return await _send(wire.transport_at(url), request, clock, action)


async def _send(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, clock: ServerClock, action: str
) -> Answer:
    response = await transport.handle_async_request(request)
    date, encoded = _headers(response)
    try:
        body = await _read_capped(response, action, encoded)
    finally:
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            await response.aclose()  # httpx's own error for a sync stream
        elif not response.is_closed:
            # What Response.aclose comes to, without its context manager.
            response.is_closed = True
            await stream.aclose()
    before = clock.offset
    clock.observe(date)
    try:
        return _decode(response.status_code, body, action)
    except ParameterError as error:
        if abs(clock.offset - before) < CURTIME_TOLERANCE - SKEW_TO_CORRECT:
            raise
        desc = (
            f"{error.desc} (the local clock is {before - clock.offset:+.0f} s off the "
            "server's, by its Date header: signatures use the server's time from now on)"
        )
        raise ClockSkew(error.code, desc, action) from error
