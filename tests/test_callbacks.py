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
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
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
HEADERS = ("AppKey", "CurTime", "MD5", "CheckSum")
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


def _verify(headers: Mapping[str, str], body: bytes = BODY, **options: Any) -> dict[str, Any]:
    options.setdefault("app_key", APP_KEY)
    return verify_callback(headers, body, APP_SECRET, clock=lambda: NOW, **options)


def _rejected(headers: Mapping[str, str], body: bytes = BODY, **options: Any) -> CallbackRejected:
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


def test_curtime_is_milliseconds() -> None:
    """CurTime in seconds, as API calls use, reads as 1970: stale."""
    assert _rejected(_sign(cur_time_ms=int(NOW))).check == "stale"


@pytest.mark.parametrize("cur_time", ["", "soon", "1.7e12", "-1700000000000", "１７"])
def test_curtime_that_is_not_integer_milliseconds_is_rejected(cur_time: str) -> None:
    """A CurTime that is not digits is rejected (an empty one as missing), even correctly signed."""
    md5 = hashlib.md5(BODY).hexdigest()
    check = hashlib.sha1(f"{APP_SECRET}{md5}{cur_time}".encode()).hexdigest()
    headers = {"AppKey": APP_KEY, "CurTime": cur_time, "MD5": md5, "CheckSum": check}
    assert _rejected(headers).check == ("missing header" if not cur_time else "bad time")


@pytest.mark.parametrize("header", HEADERS)
def test_each_missing_header_is_rejected_by_name(header: str) -> None:
    """Without any one of the four headers the callback is rejected, naming that header."""
    headers = _sign()
    del headers[header]
    error = _rejected(headers)
    assert error.check == "missing header"
    assert header in str(error)


@pytest.mark.parametrize("header", HEADERS)
def test_an_empty_header_counts_as_missing(header: str) -> None:
    """An empty header value is as good as none."""
    assert _rejected(_sign() | {header: ""}).check == "missing header"


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


async def _send_three(client: nim.NimClient) -> list[int]:
    first = await client.send_msg("alice", "bob", nim.Text("你好"))
    await client.send_attach_msg("alice", "bob", {"kind": "typing"})  # a notification: no copy
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
        assert await emulator.deliver_callbacks(url, since=3) == [200]
    assert [event["msgidServer"] for event in receiver.events] == [str(m) for m in msgids]
    assert receiver.repeats == 1
