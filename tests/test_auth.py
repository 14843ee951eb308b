"""CheckSum signing: the documented formula, and a fresh signature for every attempt."""

from __future__ import annotations

import hashlib
import itertools

import httpx
import pytest

import nim_async as nim
from nim_async._auth import CheckSumAuth, checksum
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio


def test_checksum_matches_the_facts_file_vector() -> None:
    """sha1("appsecret" + nonce + curtime), lowercase hex, as computed in the facts file."""
    assert checksum("appsecret", "4tgggergigwow323t23t", "1443592222") == (
        "22f6bb368aa719808ec13276e252e5b740271804"
    )


def test_checksum_is_sha1_of_the_three_strings_in_order() -> None:
    """The secret comes first, then the nonce, then CurTime."""
    expected = hashlib.sha1(b"s3cret" + b"n" + b"42").hexdigest()
    assert checksum("s3cret", "n", "42") == expected


async def test_every_request_gets_a_new_nonce_and_the_current_time() -> None:
    """Two requests through one auth never share a Nonce; CurTime is read at signing time."""
    seen: list[httpx.Headers] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={"code": 200})

    times = itertools.count(1_700_000_000)
    auth = CheckSumAuth("key", "secret", clock=lambda: float(next(times)))
    async with httpx.AsyncClient(transport=httpx.MockTransport(record), auth=auth) as http:
        await http.post("http://nim.test/a")
        await http.post("http://nim.test/a")

    first, second = seen
    assert first["AppKey"] == "key"
    assert first["CurTime"] == "1700000000"
    assert second["CurTime"] == "1700000001"
    assert first["Nonce"] != second["Nonce"]
    assert len(first["Nonce"]) <= 128
    for headers in seen:
        assert headers["CheckSum"] == checksum("secret", headers["Nonce"], headers["CurTime"])


def test_auth_repr_shows_the_key_but_never_the_secret() -> None:
    """The secret is kept out of reprs."""
    text = repr(CheckSumAuth("key", "very-secret"))
    assert "key" in text
    assert "very-secret" not in text


async def test_a_wrong_secret_is_refused_by_the_server_with_414(emulator: NimEmulator) -> None:
    """The emulator checks the CheckSum: a client with the wrong secret gets ParameterError."""
    async with make_client(emulator, app_secret="wrong-secret", retry=nim.RetryPolicy()) as client:
        with pytest.raises(nim.ParameterError) as caught:
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.code == 414
    assert caught.value.action == "msg/sendMsg"
    assert emulator.messages == []
    assert [call.code for call in emulator.calls] == [414]


async def test_requests_signed_by_the_client_are_accepted(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """The emulator recomputes the CheckSum from the headers it received, and accepts it."""
    await client.send_msg("alice", "bob", nim.Text("hi"))
    (call,) = emulator.calls
    assert call.code == 200
    assert call.headers["appkey"] == APP_KEY
    assert call.headers["checksum"] == checksum(
        APP_SECRET, call.headers["nonce"], call.headers["curtime"]
    )
