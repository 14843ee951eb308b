"""Message-copy callbacks (抄送): verify_callback's checks, the Starlette dependency, and the
emulator delivering signed events for the messages a NimClient sent.

The tests sign with their own few lines (`_sign`), independent of both the
verifier and the emulator's signing.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import pickle
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import nim_async as nim
from nim_async._callbacks import (
    CallbackRejected,
    callback_dependency,
    callback_id,
    verify_callback,
)
from nim_async.testing import NimEmulator
from nim_async.testing._server import serve_in_thread

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0  # seconds: the verifier's clock in the unit tests
EVENT = {
    "eventType": "1",
    "convType": "PERSON",
    "fromAccount": "alice",
    "to": "bob",
    "msgType": "TEXT",
    "body": "你好",
    "msgidServer": "4102",
    "msgTimestamp": "1700000000000",
}
BODY = json.dumps(EVENT, ensure_ascii=False).encode("utf-8")
SIGNING_HEADERS = ("CurTime", "MD5", "CheckSum")
CALLBACK_URL = "http://app.test/nim/callback"


def _sign(
    body: bytes = BODY,
    *,
    secret: str = APP_SECRET,
    key: str = APP_KEY,
    cur_time_ms: int = int(NOW * 1000),
) -> dict[str, str]:
    md5 = hashlib.md5(body).hexdigest()
    check = hashlib.sha1(f"{secret}{md5}{cur_time_ms}".encode()).hexdigest()
    return {"AppKey": key, "CurTime": str(cur_time_ms), "MD5": md5, "CheckSum": check}


def _signed_as(*, cur_time: str, body: bytes = BODY) -> dict[str, str]:
    """Headers correctly signed over any CurTime text, well formed or not."""
    md5 = hashlib.md5(body).hexdigest()
    check = hashlib.sha1(f"{APP_SECRET}{md5}{cur_time}".encode()).hexdigest()
    return {"AppKey": APP_KEY, "CurTime": cur_time, "MD5": md5, "CheckSum": check}


def _verify(headers: Any, body: Any = BODY, **options: Any) -> dict[str, Any]:
    options.setdefault("app_key", APP_KEY)
    return verify_callback(headers, body, APP_SECRET, clock=lambda: NOW, **options)


def _outcome(headers: Any, body: Any = BODY) -> dict[str, Any] | CallbackRejected:
    """The event, or the rejection: anything else propagates and fails the test."""
    try:
        return _verify(headers, body)
    except CallbackRejected as error:
        return error


def _rejected(headers: Any, body: Any = BODY, **options: Any) -> CallbackRejected:
    with pytest.raises(CallbackRejected) as caught:
        _verify(headers, body, **options)
    assert APP_SECRET not in str(caught.value)
    assert APP_SECRET not in repr(caught.value)
    return caught.value


def test_a_signed_callback_returns_its_event() -> None:
    """A body signed with the app's secret, at the current time, verifies to its JSON event."""
    assert _verify(_sign()) == EVENT


def test_a_changed_body_fails_the_md5_check() -> None:
    """A body changed after signing no longer matches its MD5 header."""
    tampered = BODY.replace(b"bob", b"eve")
    assert _rejected(_sign(), tampered).check == "md5"


def test_a_changed_body_with_a_fresh_md5_fails_the_checksum() -> None:
    """Recomputing MD5 for a changed body does not help without the secret."""
    tampered = BODY.replace(b"bob", b"eve")
    headers = _sign() | {"MD5": hashlib.md5(tampered).hexdigest()}
    assert _rejected(headers, tampered).check == "checksum"


def test_another_secret_fails_the_checksum() -> None:
    """A CheckSum made with another secret is rejected as a checksum failure."""
    assert _rejected(_sign(secret="someone-else")).check == "checksum"


@pytest.mark.parametrize(
    ("offset", "check"),
    [(-301, "stale"), (-3600, "stale"), (301, "future"), (86_400, "future")],
)
def test_curtime_beyond_max_age_is_rejected(offset: int, check: str) -> None:
    """CurTime more than max_age seconds before or after the clock is stale or future."""
    headers = _sign(cur_time_ms=int((NOW + offset) * 1000))
    assert _rejected(headers).check == check


@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_curtime_within_max_age_is_accepted(offset: int) -> None:
    """CurTime within max_age seconds either way is accepted."""
    assert _verify(_sign(cur_time_ms=int((NOW + offset) * 1000))) == EVENT


def test_max_age_is_the_allowed_distance() -> None:
    """A smaller max_age rejects what the default accepts."""
    headers = _sign(cur_time_ms=int((NOW - 61) * 1000))
    assert _verify(headers) == EVENT
    assert _rejected(headers, max_age=60).check == "stale"


def test_curtime_in_seconds_is_refused_as_looking_like_seconds() -> None:
    """CurTime in seconds, as API calls use, is stale, and the message says milliseconds belong."""
    error = _rejected(_sign(cur_time_ms=int(NOW)))
    assert error.check == "stale"
    assert error.message == (
        f"CurTime is in milliseconds since the epoch; got {int(NOW)}, which looks like seconds"
    )


def test_a_400_digit_curtime_is_a_bad_time_quoted_short() -> None:
    """A signed CurTime of 400 digits is refused as "bad time", naming the header and the form."""
    error = _rejected(_signed_as(cur_time="7" * 400))
    assert error.check == "bad time"
    assert "CurTime must be Unix time in milliseconds" in error.message
    assert "(400 characters)" in error.message
    assert "7" * 41 not in error.message


def test_a_huge_curtime_is_quoted_short() -> None:
    """A megabyte of CurTime never comes back whole in the message."""
    error = _rejected(_signed_as(cur_time="x" * 1_000_000))
    assert error.check == "bad time"
    assert len(str(error)) < 300


@pytest.mark.parametrize(
    "cur_time", ["", "soon", "1.7e12", "-1700000000000", "１７", "17 00", "٣", "1" * 17]
)
def test_curtime_that_is_not_integer_milliseconds_is_rejected(cur_time: str) -> None:
    """A CurTime that is not digits is rejected (an empty one as missing), even correctly signed."""
    headers = _signed_as(cur_time=cur_time)
    assert _rejected(headers).check == ("missing header" if not cur_time else "bad time")


@pytest.mark.parametrize("header", SIGNING_HEADERS)
def test_each_missing_signing_header_is_rejected_by_name(header: str) -> None:
    """Without CurTime, MD5 or CheckSum the callback is rejected, naming that header."""
    headers = _sign()
    del headers[header]
    error = _rejected(headers)
    assert error.check == "missing header"
    assert header in str(error)


@pytest.mark.parametrize("header", SIGNING_HEADERS)
def test_an_empty_header_counts_as_missing(header: str) -> None:
    """An empty header value is as good as none."""
    assert _rejected(_sign() | {header: ""}).check == "missing header"


@pytest.mark.parametrize("app_key", [APP_KEY, None])
def test_a_copy_without_an_appkey_header_is_accepted(app_key: str | None) -> None:
    """Copies signed with CurTime, MD5 and CheckSum only verify, with or without app_key."""
    headers = _sign()
    del headers["AppKey"]
    assert _verify(headers, app_key=app_key) == EVENT


def test_an_empty_appkey_header_counts_as_absent() -> None:
    """An empty AppKey is no AppKey: accepted, not compared with app_key."""
    assert _verify(_sign(key="")) == EVENT


def test_another_app_key_is_rejected() -> None:
    """A callback signed for another AppKey is rejected when app_key is given."""
    assert _rejected(_sign(key="other-app")).check == "app key"


def test_without_app_key_any_key_the_secret_signs_is_accepted() -> None:
    """app_key=None leaves the AppKey unchecked; the secret still is."""
    assert _verify(_sign(key="other-app"), app_key=None) == EVENT


def test_md5_and_checksum_in_upper_case_are_accepted() -> None:
    """Hex case carries nothing: an upper-case MD5 (signed as sent) or CheckSum verifies."""
    upper = hashlib.md5(BODY).hexdigest().upper()
    cur_time = str(int(NOW * 1000))
    check = hashlib.sha1(f"{APP_SECRET}{upper}{cur_time}".encode()).hexdigest()
    assert _verify({"AppKey": APP_KEY, "CurTime": cur_time, "MD5": upper, "CheckSum": check})
    signed = _sign()
    assert _verify(signed | {"CheckSum": signed["CheckSum"].upper()}) == EVENT


def test_header_names_are_matched_in_any_case() -> None:
    """Lower-case dict keys and Starlette's Headers both work."""
    lower = {name.lower(): value for name, value in _sign().items()}
    assert _verify(lower) == EVENT
    assert _verify(Headers(_sign())) == EVENT


def test_a_str_body_verifies_as_its_utf8_encoding() -> None:
    """body.decode() verifies as the raw bytes do, non-ASCII text included."""
    assert _verify(_sign(), BODY.decode("utf-8")) == EVENT


def test_a_bytearray_or_memoryview_body_verifies() -> None:
    """Any bytes-like body is read as the bytes it holds."""
    assert _verify(_sign(), bytearray(BODY)) == EVENT
    assert _verify(_sign(), memoryview(BODY)) == EVENT


def test_a_str_body_that_is_not_the_signed_text_fails_the_md5_check() -> None:
    """Encoding a str does not loosen the check: other text is another md5."""
    assert _rejected(_sign(), BODY.decode("utf-8").replace("bob", "eve")).check == "md5"


def test_a_str_body_that_cannot_be_utf8_is_refused_naming_body() -> None:
    """A str holding a lone surrogate has no UTF-8 form: refused, naming body."""
    error = _rejected(_sign(), "\udcff")
    assert error.check == "bad input"
    assert error.message.startswith("body")


@pytest.mark.parametrize("body", [None, 5, 1.5, [BODY], {"a": 1}, object()])
def test_a_body_of_another_type_is_refused_naming_body(body: Any) -> None:
    """A body that is neither bytes nor str is refused, naming body, the types and what came."""
    error = _rejected(_sign(), body)
    assert error.check == "bad input"
    assert error.message == (
        f"body must be bytes as received (or str, encoded as UTF-8); got {type(body).__name__}"
    )


@pytest.mark.parametrize("headers", [None, 5, "CurTime: 1", b"MD5: 1", [("CurTime", "1")]])
def test_headers_of_another_type_are_refused_naming_headers(headers: Any) -> None:
    """Headers that are not a mapping are refused, naming headers and what came."""
    error = _rejected(headers)
    assert error.check == "bad input"
    assert error.message.startswith("headers must be a mapping")
    assert error.message.endswith(f"got {type(headers).__name__}")


@pytest.mark.parametrize("value", [1_700_000_000_000, 1.5, ["x"], object()])
def test_a_header_value_that_is_not_a_string_is_refused_naming_it(value: Any) -> None:
    """A signing header whose value is not text is refused, naming the header and the type."""
    error = _rejected(_sign() | {"CurTime": value})
    assert error.check == "bad input"
    assert error.message == f"headers: CurTime must be a str; got {type(value).__name__}"


def test_bytes_header_names_and_values_are_read_as_latin1() -> None:
    """Raw header bytes, as ASGI servers hold them, verify like their text."""
    raw = {name.encode(): value.encode() for name, value in _sign().items()}
    assert _verify(raw) == EVENT


@pytest.mark.parametrize(
    ("header", "value", "check"),
    [
        ("MD5", "abc", "md5"),
        ("MD5", "z" * 32, "md5"),
        ("MD5", "é" * 32, "md5"),
        ("CheckSum", "abc", "checksum"),
        ("CheckSum", "g" * 40, "checksum"),
        ("CheckSum", "0" * 39, "checksum"),
    ],
)
def test_an_ill_formed_md5_or_checksum_is_refused_by_form(
    header: str, value: str, check: str
) -> None:
    """MD5 must be 32 hex digits and CheckSum 40: the message says so and quotes what came."""
    error = _rejected(_sign() | {header: value})
    assert error.check == check
    assert error.message.startswith(f"{header} must be")
    assert repr(value) in error.message


def test_a_header_carrying_the_secret_is_never_quoted_with_it() -> None:
    """A rejected value that holds the app secret is quoted with the secret blanked out."""
    error = _rejected(_sign() | {"CurTime": f"x{APP_SECRET}x"})
    assert "<app secret>" in error.message


def test_a_huge_foreign_appkey_is_quoted_short() -> None:
    """Another app's key of a megabyte is refused as "app key" in a short message."""
    error = _rejected(_sign(key="k" * 1_000_000))
    assert error.check == "app key"
    assert len(str(error)) < 300


_HOSTILE_VALUES = [
    "",
    " ",
    "\t\n",
    "é",
    "你好",
    "\x00",
    "-1",
    "-1700000000000",
    "1.5",
    "1e3",
    "nan",
    "inf",
    " 1700000000000 ",
    "0" * 5000,
    "9" * 5000,
    "a" * 1_000_000,
]


@pytest.mark.parametrize("header", ["AppKey", *SIGNING_HEADERS])
@pytest.mark.parametrize("value", _HOSTILE_VALUES, ids=lambda v: repr(v)[:20])
def test_a_hostile_header_value_is_accepted_or_rejected_never_raised(
    header: str, value: str
) -> None:
    """Any header value ends in the event or a CallbackRejected without the secret, never a crash.

    A hostile CurTime is correctly signed, so that it reaches the time checks.
    """
    headers = _signed_as(cur_time=value) if header == "CurTime" else _sign() | {header: value}
    outcome = _outcome(headers)
    if isinstance(outcome, CallbackRejected):
        assert APP_SECRET not in f"{outcome} {outcome!r}"
        assert len(str(outcome)) < 300


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(["AppKey", "appkey", "CurTime", "curtime", "MD5", "CheckSum", "X"]),
        st.one_of(st.text(), st.binary(), st.integers(), st.none()),
    ),
    body=st.one_of(st.binary(), st.text(), st.none(), st.integers()),
)
def test_any_headers_and_body_verify_or_are_rejected(headers: dict[str, Any], body: Any) -> None:
    """Whatever the headers and body, verify_callback returns or raises CallbackRejected."""
    outcome = _outcome(headers, body)
    if isinstance(outcome, CallbackRejected):
        assert APP_SECRET not in f"{outcome} {outcome!r}"


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_a_signed_body_that_is_not_a_json_object_is_rejected(body: bytes) -> None:
    """A correctly signed body must still be a UTF-8 JSON object."""
    assert _rejected(_sign(body), body).check == "not json"


def test_a_forged_body_is_reported_as_forged_not_as_unreadable() -> None:
    """The signature is checked before the body is parsed."""
    assert _rejected(_sign(b"not json", secret="x"), b"not json").check == "checksum"


@pytest.mark.parametrize("options", [{"max_age": 0}, {"max_age": -1}, {"max_age": float("nan")}])
def test_a_bad_max_age_is_a_configuration_error(options: dict[str, Any]) -> None:
    """max_age must be a positive, finite number of seconds."""
    with pytest.raises(nim.ConfigurationError):
        _verify(_sign(), **options)


@pytest.mark.parametrize("app_key", ["", 5])
def test_a_bad_app_key_is_a_configuration_error(app_key: Any) -> None:
    """app_key is a non-empty str or None."""
    with pytest.raises(nim.ConfigurationError):
        _verify(_sign(), app_key=app_key)


def test_an_empty_secret_is_a_configuration_error() -> None:
    """An empty app secret would let anyone sign: refused before any check."""
    with pytest.raises(nim.ConfigurationError):
        verify_callback(_sign(), BODY, "")
    with pytest.raises(nim.ConfigurationError):
        callback_dependency("")


def test_a_rejection_is_a_nim_error_and_a_value_error_and_pickles() -> None:
    """CallbackRejected is caught as NimError or ValueError and survives pickling."""
    error = _rejected(_sign(secret="x"))
    assert isinstance(error, nim.NimError)
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.check, str(copy)) == (CallbackRejected, "checksum", str(error))


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"msgidServer": "4102"}, "4102"),
        ({"msgidServer": 4102}, "4102"),
        ({"msgidServer": ""}, None),
        ({"msgidServer": None}, None),
        ({"eventType": "2"}, None),
    ],
)
def test_callback_id_is_the_server_msgid(event: dict[str, Any], expected: str | None) -> None:
    """callback_id is msgidServer as a string, or None when the event has none."""
    assert callback_id(event) == expected


def test_the_dependency_declares_a_request_parameter_for_fastapi() -> None:
    """FastAPI injects the request by the parameter's type: it must be Starlette's Request."""
    dependency = callback_dependency(APP_SECRET)
    parameters = inspect.signature(dependency).parameters
    assert list(parameters) == ["request"]
    assert parameters["request"].annotation is Request


class _Receiver:
    """An app server's callback route: verifies, dedupes by callback_id, keeps the events."""

    def __init__(self, secret: str = APP_SECRET) -> None:
        self.events: list[dict[str, Any]] = []
        self.repeats = 0
        self._seen: set[str] = set()
        self._verify = callback_dependency(secret, app_key=APP_KEY)
        self.app = Starlette(routes=[Route("/nim/callback", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> JSONResponse:
        event = await self._verify(request)
        key = callback_id(event)
        if key is not None and key in self._seen:
            self.repeats += 1
        else:
            if key is not None:
                self._seen.add(key)
            self.events.append(event)
        return JSONResponse({"code": 200})


async def _post(app: Any, headers: Mapping[str, str], body: bytes = BODY) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as http:
        return await http.post(CALLBACK_URL, content=body, headers=dict(headers))


async def test_the_dependency_answers_401_to_a_forgery_and_400_to_an_unreadable_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unproven requests get 401, a signed body that is not a JSON object 400; neither is kept.

    Every 401 is the same bare answer: the reason goes to the log, not to the caller.
    """
    receiver = _Receiver()
    now_ms = int(time.time() * 1000)
    with caplog.at_level(logging.WARNING, logger="nim_async"):
        forged = await _post(receiver.app, _sign(secret="x", cur_time_ms=now_ms))
        stale = await _post(receiver.app, _sign(cur_time_ms=now_ms - 3_600_000))
    unreadable = await _post(receiver.app, _sign(b"[]", cur_time_ms=now_ms), b"[]")
    good = await _post(receiver.app, _sign(cur_time_ms=now_ms))
    statuses = (forged.status_code, stale.status_code, unreadable.status_code, good.status_code)
    assert statuses == (401, 401, 400, 200)
    assert forged.content == stale.content
    assert "checksum" not in forged.text
    logged = [record.getMessage() for record in caplog.records]
    assert any("checksum" in line for line in logged)
    assert any("cur_time" in line.lower() or "curtime" in line.lower() for line in logged)
    assert not any(APP_SECRET in line for line in logged)
    assert APP_SECRET not in forged.text
    assert receiver.events == [EVENT]


class _CountedBody:
    """A streamed request body (no Content-Length) that counts the chunks pulled from it."""

    def __init__(self, chunks: int, size: int = 64 * 1024) -> None:
        self.pulled = 0
        self._chunks = chunks
        self._size = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self._chunks):
            self.pulled += 1
            yield b"x" * self._size


def _app(**options: Any) -> Starlette:
    """A callback route that answers the verified event and the body it can still read."""
    verify = callback_dependency(APP_SECRET, app_key=APP_KEY, **options)

    async def receive(request: Request) -> JSONResponse:
        event = await verify(request)
        return JSONResponse({"event": event, "body": (await request.body()).decode()})

    return Starlette(routes=[Route("/nim/callback", receive, methods=["POST"])])


async def _stream(app: Starlette, headers: Mapping[str, str], body: _CountedBody) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as http:
        return await http.post(CALLBACK_URL, content=body, headers=dict(headers))


def _now_signed(body: bytes = BODY) -> dict[str, str]:
    return _sign(body, cur_time_ms=int(time.time() * 1000))


@pytest.mark.parametrize(
    "change",
    [
        {"CurTime": None},
        {"MD5": None},
        {"CheckSum": None},
        {"CurTime": "soon"},
        {"CurTime": "7" * 400},
        {"MD5": "abc"},
        {"CheckSum": "not-a-sha1"},
    ],
    ids=["no CurTime", "no MD5", "no CheckSum", "word", "400 digits", "short MD5", "bad CheckSum"],
)
async def test_missing_or_ill_formed_headers_are_refused_before_the_body_is_read(
    change: dict[str, str | None],
) -> None:
    """A request without well-formed signing headers gets 401 and not one chunk is pulled."""
    headers = {k: v for k, v in (_now_signed() | change).items() if v is not None}
    body = _CountedBody(chunks=100)
    answer = await _stream(_app(), headers, body)
    assert (answer.status_code, body.pulled) == (401, 0)


async def test_a_streamed_body_over_the_cap_is_refused_as_soon_as_it_passes() -> None:
    """413 at the first chunk past max_body_bytes: the rest of the body is never pulled."""
    body = _CountedBody(chunks=100, size=64 * 1024)
    answer = await _stream(_app(max_body_bytes=256 * 1024), _now_signed(), body)
    assert (answer.status_code, body.pulled) == (413, 5)


async def test_an_oversized_body_is_logged_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The 413 says why on the nim_async logger, for the operator."""
    with caplog.at_level(logging.WARNING, logger="nim_async"):
        await _stream(_app(max_body_bytes=1024), _now_signed(), _CountedBody(chunks=2))
    assert any("body too large" in record.getMessage() for record in caplog.records)


async def test_the_default_cap_refuses_a_body_over_one_mebibyte() -> None:
    """Without max_body_bytes the cap is 1 MiB: the 17th chunk of 64 KiB is the last pulled."""
    body = _CountedBody(chunks=64, size=64 * 1024)
    answer = await _stream(_app(), _now_signed(), body)
    assert (answer.status_code, body.pulled) == (413, 17)


async def test_a_body_of_exactly_one_mebibyte_is_read_and_verified() -> None:
    """The default cap admits 1 MiB: the body is read whole and verified (signed, not JSON: 400)."""
    body = _CountedBody(chunks=16, size=64 * 1024)
    answer = await _stream(_app(), _now_signed(b"x" * 1024 * 1024), body)
    assert (answer.status_code, body.pulled) == (400, 16)


@pytest.mark.parametrize("declared", [str(256 * 1024 + 1), "9" * 5000], ids=["cap+1", "huge"])
async def test_a_declared_length_over_the_cap_is_refused_without_reading(declared: str) -> None:
    """A Content-Length over max_body_bytes gets 413 before a single chunk is pulled."""
    body = _CountedBody(chunks=100)
    headers = _now_signed() | {"Content-Length": declared}
    answer = await _stream(_app(max_body_bytes=256 * 1024), headers, body)
    assert (answer.status_code, body.pulled) == (413, 0)


async def test_a_body_at_the_cap_is_accepted() -> None:
    """max_body_bytes is inclusive: a body of exactly that many bytes verifies."""
    answer = await _post(_app(max_body_bytes=len(BODY)), _now_signed())
    assert answer.status_code == 200


async def test_the_route_can_still_read_the_body_after_the_dependency() -> None:
    """The body the dependency read stays available to await request.body()."""
    answer = await _post(_app(), _now_signed())
    assert answer.status_code == 200
    assert answer.json() == {"event": EVENT, "body": BODY.decode()}


async def test_the_dependency_accepts_a_copy_without_an_appkey_header() -> None:
    """Over HTTP too, a copy signed without AppKey verifies though app_key is given."""
    headers = _now_signed()
    del headers["AppKey"]
    answer = await _post(_app(), headers)
    assert (answer.status_code, answer.json()["event"]) == (200, EVENT)


@pytest.mark.parametrize("max_body_bytes", [0, -1, 1.5, True, "1024", None])
def test_a_bad_max_body_bytes_is_a_configuration_error(max_body_bytes: Any) -> None:
    """max_body_bytes must be a positive int."""
    with pytest.raises(nim.ConfigurationError, match="max_body_bytes"):
        callback_dependency(APP_SECRET, max_body_bytes=max_body_bytes)


def test_the_dependency_does_not_show_the_secret_in_its_repr() -> None:
    """The dependency function's repr names no secret."""
    assert APP_SECRET not in repr(callback_dependency(APP_SECRET))


async def _send_three(client: nim.NimClient) -> list[int]:
    first = await client.send_msg("alice", "bob", nim.Text("你好"))
    second = await client.send_msg("alice", "team-1", nim.Text("hi all"), team=True)
    batch = await client.send_batch_msg("alice", ["carol"], nim.Text("news"), return_msgid=True)
    return [first.msgid, second.msgid, batch.msgids["carol"]]


async def test_the_emulator_delivers_verifiable_copies_of_sent_messages(
    emulator: NimEmulator, client: nim.NimClient
) -> None:
    """Each message a NimClient sent reaches the receiver once, verified; a repeat is deduped."""
    msgids = await _send_three(client)
    receiver = _Receiver()
    transport = httpx.ASGITransport(app=receiver.app)
    assert await emulator.deliver_callbacks(CALLBACK_URL, transport=transport) == [200] * 3
    assert await emulator.deliver_callbacks(CALLBACK_URL, transport=transport) == [200] * 3
    assert receiver.repeats == 3
    assert [event["msgidServer"] for event in receiver.events] == [str(m) for m in msgids]
    first, second, third = receiver.events
    assert first["eventType"] == "1"
    assert (first["convType"], first["fromAccount"], first["to"]) == ("PERSON", "alice", "bob")
    assert (first["msgType"], json.loads(first["body"])) == ("TEXT", {"msg": "你好"})
    assert first["msgTimestamp"] == str(emulator.messages[0].timetag)
    assert (second["convType"], second["to"]) == ("TEAM", "team-1")
    assert third["to"] == "carol"


async def test_since_delivers_only_the_later_messages(
    emulator: NimEmulator, client: nim.NimClient
) -> None:
    """since=len(messages) after a delivery sends only what was stored after it."""
    receiver = _Receiver()
    transport = httpx.ASGITransport(app=receiver.app)
    await client.send_msg("alice", "bob", nim.Text("one"))
    assert await emulator.deliver_callbacks(CALLBACK_URL, transport=transport) == [200]
    delivered = len(emulator.messages)
    await client.send_msg("alice", "bob", nim.Text("two"))
    statuses = await emulator.deliver_callbacks(CALLBACK_URL, since=delivered, transport=transport)
    assert statuses == [200]
    assert [json.loads(e["body"])["msg"] for e in receiver.events] == ["one", "two"]
    assert receiver.repeats == 0


async def test_a_receiver_with_another_secret_refuses_every_copy(
    emulator: NimEmulator, client: nim.NimClient
) -> None:
    """The emulator signs with its app's secret: a receiver configured with another answers 401."""
    await client.send_msg("alice", "bob", nim.Text("hi"))
    receiver = _Receiver(secret="not-the-app-secret")
    transport = httpx.ASGITransport(app=receiver.app)
    assert await emulator.deliver_callbacks(CALLBACK_URL, transport=transport) == [401]
    assert receiver.events == []


async def test_a_skewed_emulator_clock_makes_its_copies_stale() -> None:
    """CurTime comes from the service's clock: ten minutes behind, the receiver refuses."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, clock_skew=-600)
    async with make_client(emulator) as client:
        await client.send_msg("alice", "bob", nim.Text("hi"))
    receiver = _Receiver()
    transport = httpx.ASGITransport(app=receiver.app)
    assert await emulator.deliver_callbacks(CALLBACK_URL, transport=transport) == [401]


async def test_the_emulator_delivers_over_the_network_to_a_served_receiver(
    emulator: NimEmulator, client: nim.NimClient
) -> None:
    """Delivery over a real socket to a uvicorn-served receiver, the way NIM reaches an app."""
    msgids = await _send_three(client)
    receiver = _Receiver()
    with serve_in_thread(receiver.app) as base:
        url = base.replace("/nimserver/", "/nim/callback")
        assert await emulator.deliver_callbacks(url) == [200] * 3
        assert await emulator.deliver_callbacks(url, since=2) == [200]
    assert [event["msgidServer"] for event in receiver.events] == [str(m) for m in msgids]
    assert receiver.repeats == 1
