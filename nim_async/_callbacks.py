"""Receiving NIM's message-copy callbacks (抄送): verify the signature, find the id to dedupe by.

When an app enables message copy, NIM POSTs each event as JSON to the app's
server with four headers (facts, "Message-copy callbacks"): ``AppKey``,
``CurTime`` (Unix **milliseconds**, unlike the seconds of API calls), ``MD5``
(md5 hex of the raw body) and ``CheckSum = sha1(AppSecret + MD5 + CurTime)``
in lowercase hex. The receiver must answer within 5 s, and deliveries can
repeat, so it dedupes: `callback_id` gives the id to dedupe by.

`verify_callback` checks a request; `callback_dependency` wraps it as a
FastAPI/Starlette dependency. Starlette is imported only when that is called.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from ._errors import ConfigurationError, NimError

logger = logging.getLogger("nim_async")

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = [
    "DEFAULT_CALLBACK_MAX_AGE",
    "CallbackCheck",
    "CallbackRejected",
    "callback_dependency",
    "callback_id",
    "verify_callback",
]

DEFAULT_CALLBACK_MAX_AGE = 300.0  # seconds: the ±5 minutes NIM allows its own CurTime

CallbackCheck = Literal[
    "missing header", "md5", "checksum", "app key", "bad time", "stale", "future", "not json"
]

# The order they are checked in: authenticity first, so a forged request never
# learns more than "checksum"; the body is parsed only once it is known to be NIM's.
_HEADERS = ("AppKey", "CurTime", "MD5", "CheckSum")

# Which HTTP status `callback_dependency` answers: the body itself is NIM's but unreadable.
_BAD_REQUEST: frozenset[CallbackCheck] = frozenset({"not json"})


class CallbackRejected(NimError, ValueError):
    """Raised by `verify_callback` when a message-copy callback fails a check.

    The message names the check and the header, never the app secret or the
    expected checksum.

    Attributes:
        check: The check that failed: ``"missing header"`` (a signing header is absent
            or empty), ``"md5"`` (the body's md5 differs from the ``MD5`` header: the
            body was changed), ``"checksum"`` (``CheckSum`` is not
            ``sha1(AppSecret + MD5 + CurTime)``: another secret, or a forgery),
            ``"app key"`` (``AppKey`` is not the expected app), ``"bad time"``
            (``CurTime`` is not integer milliseconds), ``"stale"`` / ``"future"``
            (``CurTime`` more than ``max_age`` seconds in the past / future: a replay,
            or a clock off), ``"not json"`` (a signed body that is not a JSON object).
    """

    def __init__(self, check: CallbackCheck, message: str) -> None:
        self.check: CallbackCheck = check
        self.message = message
        super().__init__(f"callback rejected ({check}): {message}")

    def __reduce__(self) -> tuple[type[CallbackRejected], tuple[str, str]]:
        return type(self), (self.check, self.message)


# The public path in tracebacks and pickles, as for every exception of nim_async.
CallbackRejected.__module__ = "nim_async"


def _header(lowered: Mapping[str, str], name: str) -> str:
    value = lowered.get(name.lower(), "").strip()
    if not value:
        raise CallbackRejected("missing header", f"missing {name} header")
    return value


def _check_settings(app_secret: str, max_age: float) -> None:
    if not app_secret:
        raise ConfigurationError("app_secret must not be empty")
    if not (isinstance(max_age, int | float) and max_age > 0 and math.isfinite(max_age)):
        raise ConfigurationError(f"max_age must be a positive number of seconds, got {max_age!r}")


def verify_callback(
    headers: Mapping[str, str],
    body: bytes,
    app_secret: str,
    *,
    app_key: str | None = None,
    max_age: float = DEFAULT_CALLBACK_MAX_AGE,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Check that a message-copy callback comes from NIM, and return its event.

    The checks, in order: the four headers ``AppKey``, ``CurTime``, ``MD5`` and
    ``CheckSum`` are present (names in any case); ``MD5`` is the md5 of ``body``
    (hex in either case); ``CheckSum`` is ``sha1(app_secret + MD5 + CurTime)``,
    compared in constant time (hex in either case); ``AppKey`` is ``app_key``
    when given; ``CurTime`` is integer milliseconds at most ``max_age`` seconds
    before or after ``clock()``; the body is a UTF-8 JSON object.

    Passing does not make the event new: NIM may deliver it again. Dedupe by
    `callback_id` (an event seen within ``max_age`` can be replayed that long).

    Args:
        headers: The request headers, any mapping (a dict, Starlette's ``Headers``).
        body: The raw request body, exactly as received.
        app_secret: The app's secret.
        app_key: The app's key; ``None`` accepts any ``AppKey`` the secret signs.
        max_age: How far (seconds) ``CurTime`` may be from ``clock()``, either way.
        clock: The current Unix time in seconds.

    Returns:
        The event, the parsed JSON object (NIM sends its values as strings).

    Raises:
        CallbackRejected: A check failed; its ``check`` says which.
        ConfigurationError: ``app_secret`` is empty, or ``max_age`` is not a positive number.
    """
    _check_settings(app_secret, max_age)
    lowered = {str(name).lower(): value for name, value in headers.items()}
    key, cur_time, md5, given = (_header(lowered, name) for name in _HEADERS)
    if not hmac.compare_digest(md5.lower().encode(), hashlib.md5(body).hexdigest().encode()):
        raise CallbackRejected("md5", "the MD5 header is not the md5 of the body")
    expected = hashlib.sha1((app_secret + md5 + cur_time).encode("utf-8")).hexdigest()
    if not hmac.compare_digest(given.lower().encode("utf-8"), expected.encode()):
        raise CallbackRejected("checksum", "the CheckSum header is not sha1(AppSecret+MD5+CurTime)")
    if app_key is not None and not hmac.compare_digest(key.encode("utf-8"), app_key.encode()):
        raise CallbackRejected("app key", "the AppKey header is not this app's key")
    if not (cur_time.isascii() and cur_time.isdigit()):
        raise CallbackRejected("bad time", "the CurTime header is not Unix time in milliseconds")
    age = clock() - int(cur_time) / 1000
    if age > max_age:
        raise CallbackRejected("stale", f"CurTime is {age:.0f} s old, more than {max_age:g} s")
    if -age > max_age:
        raise CallbackRejected("future", f"CurTime is {-age:.0f} s ahead, more than {max_age:g} s")
    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
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
) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """A FastAPI dependency (or Starlette helper) that verifies a callback and returns its event.

    Use it as ``event: dict = Depends(callback_dependency(secret, app_key=key))``,
    or ``event = await verify(request)`` in a Starlette route. It reads the raw
    body and calls `verify_callback`; a rejected callback becomes Starlette's
    ``HTTPException``: 401 when the request is not proven to be NIM's, with the
    same detail whatever the reason (a caller who is not NIM learns nothing
    about which check failed; the reason is logged at WARNING on the
    ``nim_async`` logger), and 400, with the reason, when it is NIM's but its
    body is not a JSON object.

    Args:
        app_secret: The app's secret.
        app_key: The app's key; ``None`` accepts any ``AppKey`` the secret signs.
        max_age: How far (seconds) ``CurTime`` may be from now, either way.

    Returns:
        ``async def dependency(request: starlette.requests.Request) -> dict``.

    Raises:
        ModuleNotFoundError: Starlette is not installed.
        ConfigurationError: ``app_secret`` is empty, or ``max_age`` is not a positive number.
    """
    # Starlette is the web framework's, not ours: imported only by those who call this.
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    _check_settings(app_secret, max_age)

    async def dependency(request: Request) -> dict[str, Any]:
        body = await request.body()
        try:
            return verify_callback(
                request.headers, body, app_secret, app_key=app_key, max_age=max_age
            )
        except CallbackRejected as exc:
            if exc.check in _BAD_REQUEST:
                raise HTTPException(400, str(exc)) from None
            logger.warning("%s", exc)
            raise HTTPException(401, "unauthorized") from None

    # FastAPI reads the parameter's type to inject the request; under postponed
    # annotations it would see the string "Request", unresolvable in this module.
    dependency.__annotations__ = {"request": Request, "return": dict[str, Any]}
    return dependency
