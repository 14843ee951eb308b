"""The server's ``Date`` header corrects the signing clock, read as GMT whatever the host's zone."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio


class _DateRewriter(httpx.AsyncBaseTransport):
    """The emulator's answers, their ``Date`` written as some servers and proxies write it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, suffix: str) -> None:
        self._inner = inner
        self._suffix = suffix

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self._inner.handle_async_request(request)
        date = answer.headers["date"]
        assert date.endswith(" GMT")
        answer.headers["date"] = date.removesuffix(" GMT") + self._suffix
        return answer


@pytest.fixture
def host_in_shanghai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time is UTC+8 (a POSIX zone string: no tz database needed)."""
    monkeypatch.setenv("TZ", "CST-8")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("suffix", ["", " -0000", " +0000", " GMT"])
async def test_an_http_date_is_gmt_even_without_a_zone(host_in_shanghai: None, suffix: str) -> None:
    """A zone-less or ``-0000`` Date is GMT (RFC 9110), not local time: no 414 for ever."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    transport = _DateRewriter(emulator.transport(), suffix)
    async with make_client(transport, retry=nim.RetryPolicy(max_attempts=1)) as client:
        for text in ("one", "two", "three"):
            await client.send_msg("alice", "bob", nim.Text(text))
    assert [call.code for call in emulator.calls] == [200, 200, 200]


async def test_a_server_date_eight_hours_ahead_is_still_learned(host_in_shanghai: None) -> None:
    """The fix reads dates as GMT; a real skew shown by a zone-less date is still corrected."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, clock_skew=8 * 3600)
    transport = _DateRewriter(emulator.transport(), "")
    async with make_client(transport) as client:
        await client.send_msg("alice", "bob", nim.Text("first, refused, then retried"))
        await client.send_msg("alice", "bob", nim.Text("signed right"))
    assert [call.code for call in emulator.calls] == [414, 200, 200]
