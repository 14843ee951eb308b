"""One HTTP exchange: the form on the wire, the answer read back, httpx's errors translated.

Everything that can go wrong after the request may have left becomes a
``NimError`` that says so: a dropped connection, a broken ``Content-Encoding``,
an answer that is not JSON, too deep, too large, or whose ``code`` is not a
number. Nothing raw from httpx or the JSON decoder leaves this module.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote_plus

import anyio
import httpx

from ._clock import CURTIME_TOLERANCE, SKEW_TO_CORRECT, ServerClock
from ._errors import (
    ClockSkew,
    MalformedAnswer,
    NimAPIError,
    NimConnectionError,
    NimTimeout,
    ParameterError,
    ServerError,
    error_for_code,
)
from ._uploads import Upload

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


@contextmanager
def _map_transport_errors(action: str) -> Iterator[None]:
    """Turn httpx's errors into ``NimConnectionError``s and ``MalformedAnswer``s, saying
    truthfully whether the request may have reached the server."""
    try:
        yield
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # Nothing was written to any socket: the request never left.
        raise NimTimeout(repr(exc), action=action, may_have_reached_server=False) from exc
    except httpx.TimeoutException as exc:
        raise NimTimeout(repr(exc), action=action, may_have_reached_server=True) from exc
    except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        raise NimConnectionError(repr(exc), action=action, may_have_reached_server=False) from exc
    except httpx.DecodingError as exc:
        raise MalformedAnswer(200, f"the answer could not be decoded: {exc!r}", action) from exc
    except httpx.HTTPError as exc:
        # Read/write errors, a peer that hung up mid-answer, proxies: the
        # request may have been received and carried out.
        raise NimConnectionError(repr(exc), action=action, may_have_reached_server=True) from exc


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


def _form_request(
    http: httpx.AsyncClient, url: httpx.URL, fields: Mapping[str, str]
) -> httpx.Request:
    if all(len(value) <= _STREAM_VALUES_OVER for value in fields.values()):
        body = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in fields.items())
        headers = {"Content-Type": FORM_CONTENT_TYPE}
        return http.build_request("POST", url, content=body.encode("utf-8"), headers=headers)
    large = _LargeForm(fields)
    headers = {"Content-Type": FORM_CONTENT_TYPE, "Content-Length": str(large.length)}
    return http.build_request("POST", url, content=large, headers=headers)


async def _read_capped(response: httpx.Response, action: str) -> bytes:
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > MAX_ANSWER_BYTES:
            desc = f"HTTP {response.status_code}: an answer over {MAX_ANSWER_BYTES} bytes"
            raise MalformedAnswer(response.status_code, desc, action)
    return bytes(body)


def _decode(status: int, body: bytes, action: str) -> Answer:
    """Read a NIM answer: its JSON ``code`` decides; any HTTP 5xx is a server error."""
    try:
        answer = json.loads(body)
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

    __slots__ = ("_current", "urls")

    def __init__(self, urls: tuple[httpx.URL, ...]) -> None:
        self.urls = urls
        self._current = 0

    @property
    def current(self) -> httpx.URL:
        """The base URL calls go to now."""
        return self.urls[self._current]

    def unreachable(self, url: httpx.URL) -> None:
        """Move past ``url`` if it is still the current one."""
        if self.urls[self._current] == url:
            self._current = (self._current + 1) % len(self.urls)


async def exchange(
    http: httpx.AsyncClient,
    hosts: Hosts,
    clock: ServerClock,
    action: str,
    fields: Mapping[str, str],
    upload: Upload | None,
    *,
    deadline: float,
) -> Answer:
    """POST one attempt of ``action`` and return its answer (code 200).

    Args:
        http: The client's pool.
        hosts: Where the service is; an unreachable host is passed over.
        clock: Learns the server's time from each answer's ``Date``.
        action: The NIM action, e.g. ``"msg/sendMsg"``.
        fields: The form's text fields.
        upload: The multipart file part of msg/fileUpload, if any.
        deadline: The longest the whole attempt may take, in seconds: httpx's
            timeouts bound each read, not a server that drips its answer.

    Raises:
        ClockSkew: A 414 whose answer showed the local clock five minutes or
            more off the server's (signatures are corrected from now on).
        NimAPIError: An error code, an HTTP error page, or an unreadable answer.
        NimConnectionError: No answer came back, saying whether the request may
            have reached the server.
    """
    with _map_transport_errors(action):
        try:
            with anyio.fail_after(deadline):
                for tried in range(1, len(hosts.urls) + 1):
                    base = hosts.current
                    try:
                        return await _post(http, base, clock, action, fields, upload)
                    except (httpx.ConnectError, httpx.ConnectTimeout):
                        hosts.unreachable(base)
                        if tried == len(hosts.urls):
                            raise
                raise AssertionError("unreachable: the loop returns or raises")
        except TimeoutError as exc:
            desc = f"no whole answer within {deadline:g} s"
            raise NimTimeout(desc, action=action, may_have_reached_server=True) from exc


@functools.lru_cache(maxsize=256)
def _action_url(base: httpx.URL, action: str) -> httpx.URL:
    # Joining and parsing a URL per call costs as much as the rest of the
    # request: a host has fifteen actions.
    return base.join(f"{action}.action")


async def _post(
    http: httpx.AsyncClient,
    base: httpx.URL,
    clock: ServerClock,
    action: str,
    fields: Mapping[str, str],
    upload: Upload | None,
) -> Answer:
    url = _action_url(base, action)
    if upload is None:
        return await _send(http, _form_request(http, url, fields), clock, action)
    with upload.open() as stream:
        files = {"content": (upload.filename, stream)}
        request = http.build_request("POST", url, data=dict(fields), files=files)
        return await _send(http, request, clock, action)


async def _send(
    http: httpx.AsyncClient, request: httpx.Request, clock: ServerClock, action: str
) -> Answer:
    response = await http.send(request, stream=True)
    try:
        body = await _read_capped(response, action)
    finally:
        await response.aclose()
    before = clock.offset
    clock.observe(response.headers.get("date"))
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
