"""The pipeline's cheaper steps keep their promises: the form escapes as quote_plus does,
answers decode as json.loads reads bytes, every attempt is signed afresh, any transport
sees complete headers, and an attempt's deadline turns only its own cancellation into a
timeout."""

from __future__ import annotations

import asyncio
import hashlib
import json
from urllib.parse import quote_plus

import httpx
import pytest

from nim_async._auth import CheckSumAuth, checksum
from nim_async._deadlines import AttemptDeadline, Deadlines
from nim_async._endpoints import ENDPOINTS, FILE_UPLOAD
from nim_async._http import _decode, _escaped, _form_body
from nim_async._transport import FormRequest
from nim_async._wire import Wire
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "text",
    [
        "user1",
        '{"n":1}',
        "a b+c&d=e%f~g.h_i-j",
        "中文消息 with emoji 😀",
        "\x00\x1f\x7f",
        "x" * 255 + " ",
        "é" * 300,
        '{"a":"' + "y z" * 2000 + '"}',
    ],
)
def test_a_form_value_is_escaped_as_quote_plus_escapes_it(text: str) -> None:
    """Short, long, ASCII and non-ASCII values come out as urllib's quote_plus writes them."""
    assert _escaped(text) == quote_plus(text)


def test_a_form_with_a_very_long_value_is_left_to_stream() -> None:
    """A value past the streaming threshold yields no body: it is sent piece by piece."""
    assert _form_body({"content": "a" * (256 * 1024 + 1)}) is None
    assert (
        _form_body({"from": "alice", "attach": '{"n":1}'}) == b"from=alice&attach=%7B%22n%22%3A1%7D"
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":200,"data":{"n":"\xe4\xb8\xad"}}',
        b'\xef\xbb\xbf{"code":200}',
        '{"code":200}'.encode("utf-16"),
        '{"code":200}'.encode("utf-32-le"),
    ],
)
def test_an_answer_decodes_as_json_loads_reads_bytes(body: bytes) -> None:
    """UTF-8 takes the short way; a BOM, UTF-16 or UTF-32 answer still reads as before."""
    assert _decode(200, body, "msg/sendMsg") == json.loads(body)


def test_each_signature_has_a_fresh_nonce_and_a_valid_checksum() -> None:
    """Two signatures never share a nonce; each CheckSum is sha1(secret + nonce + CurTime)."""
    auth = CheckSumAuth(APP_KEY, APP_SECRET, clock=lambda: 1_700_000_000.9)
    first, second = dict(auth.headers()), dict(auth.headers())
    assert first["Nonce"] != second["Nonce"]
    for signed in (first, second):
        assert signed["AppKey"] == APP_KEY
        assert signed["CurTime"] == "1700000000"
        assert len(signed["Nonce"]) == 32
        assert int(signed["Nonce"], 16) >= 0
        expected = hashlib.sha1(
            (APP_SECRET + signed["Nonce"] + signed["CurTime"]).encode()
        ).hexdigest()
        assert signed["CheckSum"] == expected == checksum(APP_SECRET, signed["Nonce"], "1700000000")


def test_no_signature_header_carries_the_secret() -> None:
    """The secret is hashed, never sent."""
    auth = CheckSumAuth(APP_KEY, APP_SECRET)
    assert all(APP_SECRET not in value for _, value in auth.headers())
    assert APP_SECRET not in repr(auth)


def test_a_form_request_shows_any_transport_its_headers_and_body() -> None:
    """A transport other than the default reads headers, content and URL as from any request."""
    url = httpx.URL("https://api.netease.im/nimserver/msg/sendMsg.action")
    wire = Wire(
        httpx.MockTransport(lambda request: httpx.Response(200)),
        timeout=httpx.Timeout(5.0),
        signature=lambda: [("AppKey", "ключ"), ("Nonce", "n"), ("CurTime", "1"), ("CheckSum", "c")],
        user_agent="nim-async/test",
    )
    request = wire.form_request(
        url, b"from=a", content_type="application/x-www-form-urlencoded", length=6
    )
    assert isinstance(request, FormRequest)
    assert request.url is url
    assert request.content == b"from=a"
    assert request.method == "POST"
    assert request.extensions["timeout"]["read"] == 5.0
    assert request.headers["host"] == "api.netease.im"
    assert request.headers["content-length"] == "6"
    assert request.headers["user-agent"] == "nim-async/test"
    # UTF-8 on the wire, as the default transport writes text headers.
    assert (b"AppKey", "ключ".encode()) in request.headers.raw
    request.headers["X-Extra"] = "1"  # a transport or hook may change them: the change stays
    assert request.headers["x-extra"] == "1"


async def test_every_attempt_is_signed_afresh_through_the_pipeline(emulator: NimEmulator) -> None:
    """Three calls send three nonces, each accepted by the emulator's CheckSum check."""
    async with make_client(emulator) as client:
        for number in range(3):
            await client.send_attach_msg("alice", f"user{number}", {"n": number})
    nonces = [call.headers["nonce"] for call in emulator.calls]
    assert len(set(nonces)) == 3
    assert all(call.code == 200 for call in emulator.calls)


async def test_a_deadline_turns_its_own_cancellation_into_a_timeout() -> None:
    """Expired by its watcher, the attempt ends with TimeoutError and the task is not cancelled."""
    deadlines = Deadlines()
    scope = AttemptDeadline()
    deadlines.watch(scope, 0.01)
    with pytest.raises(TimeoutError):
        async with scope:
            await asyncio.sleep(5)
    deadlines.forget(scope)
    assert scope.expired()
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0)  # still runs: no cancellation is left pending


async def test_a_deadline_leaves_an_outside_cancellation_alone() -> None:
    """A cancellation from outside goes on up as CancelledError, not as a timeout."""
    scope = AttemptDeadline()

    async def attempt() -> None:
        async with scope:
            await asyncio.sleep(5)

    task = asyncio.ensure_future(attempt())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not scope.expired()


async def test_a_deadline_after_its_attempt_ended_does_nothing() -> None:
    """Expiring a scope already left cancels nobody."""
    scope = AttemptDeadline()
    async with scope:
        pass
    scope.cancel()
    assert not scope.expired()
    await asyncio.sleep(0)


def test_only_the_file_upload_looks_for_a_file_part() -> None:
    """msg/fileUpload is the one endpoint whose form may carry a file part."""
    assert FILE_UPLOAD.uploads
    assert [endpoint.action for endpoint in ENDPOINTS.values() if endpoint.uploads] == [
        FILE_UPLOAD.action
    ]
