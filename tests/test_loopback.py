"""Over a real loopback port: the emulator served by uvicorn, timeouts and refused connections."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import anyio
import httpx
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import FAST_RETRY, Wire, free_port, make_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def served(emulator: NimEmulator) -> Iterator[str]:
    with emulator.serve() as base_url:
        yield base_url


async def test_sends_over_a_real_connection_pool(
    wire: Wire, served: str, emulator: NimEmulator
) -> None:
    """Fifty concurrent sends share one pooled client over TCP, all accepted."""
    async with (
        make_client(**wire, base_url=served, max_connections=10, retry=nim.RetryPolicy()) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(50):
            group.start_soon(client.send_msg, "alice", f"user{number}", nim.Text("hi"))
    assert len(emulator.messages) == 50
    assert {call.code for call in emulator.calls} == {200}


async def test_a_read_timeout_is_ambiguous_and_a_send_is_not_retried(
    wire: Wire, served: str, emulator: NimEmulator
) -> None:
    """The server got the request and is slow: NimTimeout, may_have_reached_server, one call."""
    emulator.set_latency(1.0, "msg/sendMsg")
    async with make_client(**wire, base_url=served, timeout=0.2) as client:
        with pytest.raises(nim.NimTimeout) as caught:
            await client.send_msg("alice", "bob", nim.Text("slow"))
    assert caught.value.may_have_reached_server is True
    assert caught.value.action == "msg/sendMsg"
    assert len(emulator.calls) == 1


async def test_a_refused_connection_never_reached_the_server_and_is_retried(
    wire: Wire,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens: the request surely never left, so even a send is retried."""
    caplog.set_level(logging.DEBUG, logger="nim_async")
    url = f"http://127.0.0.1:{free_port()}/nimserver/"
    async with make_client(**wire, base_url=url) as client:
        with pytest.raises(nim.NimConnectionError) as caught:
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.may_have_reached_server is False
    assert not isinstance(caught.value, nim.NimTimeout)
    lines = [r for r in caplog.records if r.name == "nim_async"]
    attempts = [r.getMessage() for r in lines if r.levelno == logging.DEBUG]
    retries = [r.getMessage() for r in lines if r.levelno == logging.INFO]
    assert len(attempts) == FAST_RETRY.max_attempts
    assert all("outcome=NimConnectionError" in line for line in attempts)
    assert len(retries) == FAST_RETRY.max_attempts - 1


async def test_a_pool_timeout_never_reached_the_server(
    wire: Wire, served: str, emulator: NimEmulator
) -> None:
    """No free pooled connection: the request never left, so it is safe to retry."""
    emulator.set_latency(0.5, "msg/sendMsg")
    outcomes: dict[int, nim.NimError | None] = {}

    async def send(client: nim.NimClient, number: int) -> None:
        try:
            await client.send_msg("alice", "bob", nim.Text("hi"))
            outcomes[number] = None
        except nim.NimError as error:
            outcomes[number] = error

    async with (
        make_client(
            **wire,
            base_url=served,
            max_connections=1,
            timeout=httpx.Timeout(5.0, pool=0.05),
            retry=nim.RetryPolicy(max_attempts=1),
        ) as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(send, client, 1)
        await anyio.sleep(0.05)
        group.start_soon(send, client, 2)
    first, second = outcomes[1], outcomes[2]
    assert first is None
    assert isinstance(second, nim.NimTimeout)
    assert second.may_have_reached_server is False
    assert len(emulator.calls) == 1


async def test_thousands_of_concurrent_calls_queue_outside_the_pool() -> None:
    """2,000 calls at once: never more than max_connections inside httpx, all answered."""
    inside = 0
    most = 0

    class Counting(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal inside, most
            inside += 1
            most = max(most, inside)
            try:
                await anyio.sleep(0.001)
                body = {"code": 200, "data": {"msgid": 1, "timetag": 1, "antispam": False}}
                return httpx.Response(200, json=body)
            finally:
                inside -= 1

    async with (
        make_client(Counting(), max_connections=20) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(2000):
            group.start_soon(client.send_msg, "alice", f"u{number}", nim.Text("hi"))
    assert most <= 20
    assert client.limiter_stats()["msg/sendMsg"].calls == 2000
