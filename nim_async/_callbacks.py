"""Receiving NIM's message-copy callbacks (抄送): verify the signature, find the id to dedupe by.

When an app enables message copy, NIM POSTs each event as JSON to the app's
server, signed as NetEase's 消息抄送 (message copy) documentation describes:
``CurTime`` (Unix **milliseconds**, unlike the seconds of API calls), ``MD5``
(md5 hex of the raw body) and ``CheckSum = sha1(AppSecret + MD5 + CurTime)``
in lowercase hex, and often ``AppKey``, which the signature does not cover.
The receiver must answer within 5 s, and deliveries can repeat, so it dedupes:
`callback_id` gives the id to dedupe by.

`verify_callback` checks a request; `callback_dependency` wraps it as a
FastAPI/Starlette dependency. Starlette is imported only when that is called.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ._errors import ConfigurationError, NimError
from ._extras import needs_extra

logger = logging.getLogger("nim_async")

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = [
    "DEFAULT_CALLBACK_MAX_AGE",
    "DEFAULT_CALLBACK_MAX_BODY",
    "CallbackRejected",
    "callback_dependency",
    "callback_id",
    "verify_callback",
]

DEFAULT_CALLBACK_MAX_AGE = 300.0  # seconds: the ±5 minutes NIM allows its own CurTime

# One copy request carries one event, and what an event can hold is bounded by what NIM
# accepts: NetEase's 发送普通消息 (msg/sendMsg) and 发送自定义系统通知 (msg/sendAttachMsg)
# documentation cap a body at 5000 characters, an attach at 4096, ext at 1024 and the push
# payload at 2048. At 7 bytes a character (JSON text escaped again inside a JSON string)
# all of them together stay under 128 KiB; 1 MiB leaves 8 times that for the fields around
# them, while each oversized request costs the receiver at most 1 MiB.
DEFAULT_CALLBACK_MAX_BODY = 1024 * 1024

CallbackCheck = Literal[
    "bad input",
    "missing header",
    "md5",
    "checksum",
    "app key",
    "bad time",
    "stale",
    "future",
    "not json",
]

# Which HTTP status `callback_dependency` answers: the body itself is NIM's but unreadable.
_BAD_REQUEST: frozenset[CallbackCheck] = frozenset({"not json"})

# Checked before the body is touched, in this order. AppKey is not among them: NetEase's
# 消息抄送 documentation shows copy requests without it, and the CheckSum does not cover it.
_REQUIRED = ("CurTime", "MD5", "CheckSum")

# 13 digits until the year 2286; longer is not a time NIM sends, and bounding it keeps
# int() and the age arithmetic away from huge numbers (OverflowError, int's digit limit).
_MAX_CURTIME_DIGITS = 16
# Below this, a CurTime read as milliseconds is before March 1973; read as seconds it is
# any date until the year 5138: someone signed with the seconds of NIM's API calls.
_SECONDS_BELOW = 10**11

_HEX = frozenset(string.hexdigits)
_SHOWN_CHARS = 40  # of a rejected value quoted back: enough to recognise, never megabytes


class CallbackRejected(NimError, ValueError):
    """Raised by `verify_callback` when a message-copy callback fails a check.

    The message names the check and the header, quotes at most 40 characters of a
    rejected value, and never holds the app secret or the expected checksum.

    Attributes:
        message: What failed, as ``str(error)``.
        check: The check that failed: ``"bad input"`` (``headers`` is not a mapping,
            a header value is not a string, or ``body`` is neither bytes nor str),
            ``"missing header"`` (``CurTime``, ``MD5`` or ``CheckSum`` is absent or
            empty), ``"md5"`` (``MD5`` is not 32 hex digits, or not the md5 of the
            body: the body was changed), ``"checksum"`` (``CheckSum`` is not 40 hex
            digits, or not ``sha1(AppSecret + MD5 + CurTime)``: another secret, or a
            forgery), ``"app key"`` (``AppKey`` is present and not the expected app),
            ``"bad time"`` (``CurTime`` is not integer milliseconds of at most 16
            digits), ``"stale"`` / ``"future"`` (``CurTime`` more than ``max_age``
            seconds in the past / future: a replay, a clock off, or seconds where
            milliseconds belong), ``"not json"`` (a signed body that is not a JSON
            object).
    """

    def __init__(self, check: CallbackCheck, message: str) -> None:
        self.check: CallbackCheck = check
        self.message = message
        super().__init__(f"callback rejected ({check}): {message}")

    def __reduce__(self) -> tuple[type[CallbackRejected], tuple[str, str]]:
        return type(self), (self.check, self.message)


# The public path in tracebacks and pickles, as for every exception of nim_async.
CallbackRejected.__module__ = "nim_async"


class _Signed(NamedTuple):
    app_key: str | None
    cur_time: str
    md5: str
    checksum: str


def _shown(value: str, secret: str) -> str:
    # Redacted before truncation, so no cut can leave a piece of the secret behind.
    if secret:
        value = value.replace(secret, "<app secret>")
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return f"{value[:_SHOWN_CHARS]!r}… ({len(value)} characters)"


def _lowered(headers: object) -> dict[str, object]:
    items = getattr(headers, "items", None)
    if isinstance(headers, str | bytes) or not callable(items):
        raise CallbackRejected(
            "bad input",
            "headers must be a mapping of header names to values (a dict, Starlette's "
            f"Headers); got {type(headers).__name__}",
        )
    lowered: dict[str, object] = {}
    for pair in items():
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise CallbackRejected(
                "bad input",
                f"headers.items() must give (name, value) pairs; got {type(pair).__name__}",
            ) from None
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        # A name of another type cannot be one of the signing headers: nothing to read.
        if isinstance(name, str):
            lowered[name.strip().lower()] = value
    return lowered


def _value(lowered: Mapping[str, object], name: str) -> str | None:
    raw = lowered.get(name.lower())
    if raw is None:
        return None
    # HTTP header bytes are Latin-1, as Starlette decodes them.
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("latin-1")
    if not isinstance(raw, str):
        raise CallbackRejected(
            "bad input", f"headers: {name} must be a str; got {type(raw).__name__}"
        )
    return raw.strip() or None


def _required(lowered: Mapping[str, object], name: str) -> str:
    value = _value(lowered, name)
    if value is None:
        raise CallbackRejected("missing header", f"missing {name} header")
    return value


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and _HEX.issuperset(value)


def _signed_headers(headers: object, secret: str) -> _Signed:
    lowered = _lowered(headers)
    app_key = _value(lowered, "AppKey")
    cur_time, md5, checksum = (_required(lowered, name) for name in _REQUIRED)
    if not (cur_time.isascii() and cur_time.isdigit() and len(cur_time) <= _MAX_CURTIME_DIGITS):
        raise CallbackRejected(
            "bad time",
            "CurTime must be Unix time in milliseconds, at most "
            f"{_MAX_CURTIME_DIGITS} ASCII digits; got {_shown(cur_time, secret)}",
        )
    if not _is_hex(md5, 32):
        raise CallbackRejected(
            "md5", f"MD5 must be 32 hex digits (the body's md5); got {_shown(md5, secret)}"
        )
    if not _is_hex(checksum, 40):
        raise CallbackRejected(
            "checksum",
            f"CheckSum must be 40 hex digits (a sha1); got {_shown(checksum, secret)}",
        )
    return _Signed(app_key, cur_time, md5, checksum)


def _body_bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError:
            raise CallbackRejected(
                "bad input",
                "body: a str body must encode as UTF-8; got a str with lone surrogates",
            ) from None
    raise CallbackRejected(
        "bad input",
        f"body must be bytes as received (or str, encoded as UTF-8); got {type(body).__name__}",
    )


def _check_settings(app_secret: object, max_age: object, app_key: object = None) -> None:
    # The secret's type, never its value: a message must not carry it.
    if not isinstance(app_secret, str) or not app_secret:
        raise ConfigurationError(
            f"app_secret must be a non-empty str, got {type(app_secret).__name__}"
        )
    if not (
        isinstance(max_age, int | float)
        and not isinstance(max_age, bool)
        and max_age > 0
        and math.isfinite(max_age)
    ):
        raise ConfigurationError(f"max_age must be a positive number of seconds, got {max_age!r}")
    if app_key is not None and not (isinstance(app_key, str) and app_key):
        raise ConfigurationError(f"app_key must be a non-empty str or None, got {app_key!r}")


def verify_callback(
    headers: Mapping[str, str],
    body: bytes | bytearray | memoryview | str,
    app_secret: str,
    *,
    app_key: str | None = None,
    max_age: float = DEFAULT_CALLBACK_MAX_AGE,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Check that a message-copy callback comes from NIM, and return its event.

    The checks, in order: the ``CurTime``, ``MD5`` and ``CheckSum`` headers are
    present (names in any case) and well formed (``CurTime`` digits, ``MD5`` 32
    and ``CheckSum`` 40 hex digits); ``MD5`` is the md5 of ``body`` (hex in either
    case); ``CheckSum`` is ``sha1(app_secret + MD5 + CurTime)``, compared in
    constant time (hex in either case); ``AppKey``, when the request carries
    one and ``app_key`` is given, is ``app_key``; ``CurTime`` is integer
    milliseconds at most ``max_age`` seconds before or after ``clock()``; the
    body is a UTF-8 JSON object.

    ``AppKey`` is optional: NetEase's 消息抄送 (message copy) documentation shows
    copy requests signed with ``CurTime``, ``MD5`` and ``CheckSum`` only, and the
    ``CheckSum`` does not cover ``AppKey``, so its absence weakens nothing: the
    secret alone proves the request. A request without it is accepted whether
    ``app_key`` is given or not; one with another app's key is refused.

    Passing does not make the event new: NIM may deliver it again. Dedupe by
    `callback_id` (an event seen within ``max_age`` can be replayed that long).

    Args:
        headers: The request headers, any mapping of names to str values (a dict,
            Starlette's ``Headers``, anything with ``items()``); bytes values are
            read as Latin-1, as HTTP servers do.
        body: The raw request body, exactly as received. A str is encoded as UTF-8
            before its md5 is taken: NIM computes ``MD5`` over the raw bytes, which
            for its UTF-8 JSON are the UTF-8 encoding of the text, so
            ``body.decode()`` verifies as the bytes would.
        app_secret: The app's secret.
        app_key: The app's key, compared with ``AppKey`` when the request has one;
            ``None`` accepts any ``AppKey`` the secret signs.
        max_age: How far (seconds) ``CurTime`` may be from ``clock()``, either way.
        clock: The current Unix time in seconds.

    Returns:
        The event, the parsed JSON object (NIM sends its values as strings).

    Raises:
        CallbackRejected: A check failed; its ``check`` says which, its message names
            the header or parameter, what it accepts and (shortened to 40 characters)
            what it got. A ``CurTime`` that looks like seconds is refused as stale with
            ``CurTime is in milliseconds since the epoch; got 1794599765, which looks
            like seconds``. ``headers`` or ``body`` of the wrong type is ``"bad input"``.
        ConfigurationError: ``app_secret`` is not a non-empty str, ``app_key`` is not
            ``None`` or a non-empty str, or ``max_age`` is not a positive number.
    """
    _check_settings(app_secret, max_age, app_key)
    raw = _body_bytes(body)
    signed = _signed_headers(headers, app_secret)
    # Authenticity before anything else about the content, so a forged request never
    # learns more than "checksum" (the forms above are public knowledge).
    if not hmac.compare_digest(signed.md5.lower().encode(), hashlib.md5(raw).hexdigest().encode()):
        raise CallbackRejected("md5", "the MD5 header is not the md5 of the body")
    expected = hashlib.sha1((app_secret + signed.md5 + signed.cur_time).encode("utf-8"))
    if not hmac.compare_digest(signed.checksum.lower().encode(), expected.hexdigest().encode()):
        raise CallbackRejected("checksum", "the CheckSum header is not sha1(AppSecret+MD5+CurTime)")
    if (
        app_key is not None
        and signed.app_key is not None
        and not hmac.compare_digest(signed.app_key.encode("utf-8"), app_key.encode("utf-8"))
    ):
        raise CallbackRejected(
            "app key",
            f"the AppKey header is not this app's key; got {_shown(signed.app_key, app_secret)}",
        )
    cur_ms = int(signed.cur_time)
    age = clock() - cur_ms / 1000
    if age > max_age:
        if cur_ms < _SECONDS_BELOW:
            raise CallbackRejected(
                "stale",
                f"CurTime is in milliseconds since the epoch; got {signed.cur_time}, "
                "which looks like seconds",
            )
        raise CallbackRejected("stale", f"CurTime is {age:.0f} s old, more than {max_age:g} s")
    if -age > max_age:
        raise CallbackRejected("future", f"CurTime is {-age:.0f} s ahead, more than {max_age:g} s")
    try:
        event = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CallbackRejected("not json", "the body is not UTF-8 JSON") from None
    if not isinstance(event, dict):
        raise CallbackRejected("not json", "the body is JSON but not an object")
    return event


def callback_id(event: Mapping[str, Any]) -> str | None:
    """The id to dedupe a callback event by: its ``msgidServer``, as a string.

    NIM's copy events of messages (``eventType`` 1) carry the server message id
    in ``msgidServer``; a repeated delivery carries the same id.

    Args:
        event: An event `verify_callback` returned.

    Returns:
        ``msgidServer`` as a string, or ``None`` when the event has none (other
        event types): dedupe those by a hash of the body instead.
    """
    msgid = event.get("msgidServer")
    if msgid is None or msgid == "" or isinstance(msgid, bool | dict | list):
        return None
    return str(msgid)


def callback_dependency(
    app_secret: str,
    *,
    app_key: str | None = None,
    max_age: float = DEFAULT_CALLBACK_MAX_AGE,
    max_body_bytes: int = DEFAULT_CALLBACK_MAX_BODY,
) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """A FastAPI dependency (or Starlette helper) that verifies a callback and returns its event.

    Use it as ``event: dict = Depends(callback_dependency(secret, app_key=key))``,
    or ``event = await verify(request)`` in a Starlette route. It checks the
    signing headers before it reads anything of the body, then reads the body
    piece by piece, at most ``max_body_bytes`` of it, and calls `verify_callback`.

    The answers, as Starlette's ``HTTPException``:

    - 401 when the request is not proven to be NIM's, with the same detail
      whatever the reason (a caller who is not NIM learns nothing about which
      check failed; the reason is logged at WARNING on the ``nim_async`` logger).
      A request whose ``CurTime``, ``MD5`` or ``CheckSum`` is missing or ill-formed
      gets it before a byte of its body is read.
    - 413 when the body is larger than ``max_body_bytes``: at once when its
      ``Content-Length`` says so, otherwise as soon as the bytes read pass the
      cap; the rest is never read.
    - 400, with the reason, when it is NIM's but its body is not a JSON object.

    The body it read stays available to ``await request.body()``. The cap holds
    only if nothing before the dependency reads the body: a FastAPI route that
    also declares a body parameter, or a middleware that reads it, buffers it whole.

    Args:
        app_secret: The app's secret.
        app_key: The app's key, compared with ``AppKey`` when the request has one;
            ``None`` accepts any ``AppKey`` the secret signs.
        max_age: How far (seconds) ``CurTime`` may be from now, either way.
        max_body_bytes: The largest body read, in bytes; a longer one is answered
            413. The default, `DEFAULT_CALLBACK_MAX_BODY` (1 MiB), is more than 8
            times the largest event: each copy request carries one, and NetEase's
            发送普通消息 (msg/sendMsg) and 发送自定义系统通知 (msg/sendAttachMsg)
            documentation cap a body at 5000 characters, an attach at 4096, ext at
            1024 and the push payload at 2048, under 128 KiB even escaped twice.

    Returns:
        ``async def dependency(request: starlette.requests.Request) -> dict``.

    Raises:
        ModuleNotFoundError: Starlette is not installed.
        ConfigurationError: ``app_secret`` is not a non-empty str, ``app_key`` is not
            ``None`` or a non-empty str, ``max_age`` is not a positive number, or
            ``max_body_bytes`` is not a positive int.
    """
    # Starlette is the web framework's (FastAPI brings it), not ours: imported only
    # by those who call this; without it, the error names the extra that has it.
    with needs_extra("callback_dependency", "emulator", frozenset({"starlette"})):
        from starlette.exceptions import HTTPException
        from starlette.requests import Request

    _check_settings(app_secret, max_age, app_key)
    if not (
        isinstance(max_body_bytes, int)
        and not isinstance(max_body_bytes, bool)
        and max_body_bytes > 0
    ):
        raise ConfigurationError(f"max_body_bytes must be a positive int, got {max_body_bytes!r}")

    def refused(exc: CallbackRejected) -> HTTPException:
        if exc.check in _BAD_REQUEST:
            return HTTPException(400, str(exc))
        logger.warning("%s", exc)
        return HTTPException(401, "unauthorized")

    def too_large(what: str) -> HTTPException:
        logger.warning(
            "callback refused (body too large): %s; max_body_bytes is %d", what, max_body_bytes
        )
        return HTTPException(413, f"request body over {max_body_bytes} bytes")

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length", "").strip()
        # A length of more digits than the cap's is over it: no int() of a huge string.
        if declared.isascii() and declared.isdigit():
            significant = declared.lstrip("0") or "0"
            if len(significant) > len(str(max_body_bytes)) or int(significant) > max_body_bytes:
                raise too_large(f"Content-Length {_shown(declared, app_secret)}")
        chunks: list[bytes] = []
        size = 0
        async with aclosing(request.stream()) as stream:
            async for chunk in stream:
                size += len(chunk)
                if size > max_body_bytes:
                    raise too_large(f"more than {max_body_bytes} bytes sent")
                chunks.append(chunk)
        body = b"".join(chunks)
        # Starlette's own cache of the body: the route can still `await request.body()`,
        # which would otherwise fail with "Stream consumed".
        request._body = body
        return body

    async def dependency(request: Request) -> dict[str, Any]:
        try:
            _signed_headers(request.headers, app_secret)
        except CallbackRejected as exc:
            raise refused(exc) from None
        body = await read_body(request)
        try:
            return verify_callback(
                request.headers, body, app_secret, app_key=app_key, max_age=max_age
            )
        except CallbackRejected as exc:
            raise refused(exc) from None

    # FastAPI reads the parameter's type to inject the request; under postponed
    # annotations it would see the string "Request", unresolvable in this module.
    dependency.__annotations__ = {"request": Request, "return": dict[str, Any]}
    return dependency
