"""Each attempt's deadline: it ends a slow attempt as NimTimeout, follows the timeout set
now, leaves an outside cancellation alone, and leaves no timer behind an attempt that ended."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import make_client

pytestmark = pytest.mark.anyio

SENT = {"code": 200, "data": {"msgid": 1, "timetag": 2, "antispam": False}}


async def test_a_shorter_timeout_set_after_a_call_ends_the_next_slow_attempt(
    emulator: NimEmulator,
) -> None:
    """A call under the 10 s timeout, then timeout=0.05: the next slow attempt is a NimTimeout."""
    async with make_client(emulator) as client:
        await client.send_attach_msg("alice", "bob", "x")
        client.timeout = 0.05
        emulator.set_latency(30.0)
        # Without its own deadline the attempt would wait out the first one's 40 s.
        with anyio.fail_after(10), pytest.raises(nim.NimTimeout) as caught:
            await client.send_attach_msg("alice", "bob", "x")
    assert caught.value.may_have_reached_server


async def test_attempts_in_flight_each_end_at_their_own_deadline(emulator: NimEmulator) -> None:
    """A later attempt with a shorter deadline ends first; the earlier one still ends at its own."""
    emulator.set_latency(30.0)
    ended: list[str] = []

    async def send(name: str, client: nim.NimClient) -> None:
        with pytest.raises(nim.NimTimeout):
            await client.send_attach_msg("alice", name, "x")
        ended.append(name)

    async with make_client(emulator, timeout=0.5) as client:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(send, "long", client)
                await anyio.sleep(0.05)
                client.timeout = 0.01
                group.start_soon(send, "short", client)
    assert ended == ["short", "long"]


async def test_a_cancellation_from_outside_is_not_a_timeout(emulator: NimEmulator) -> None:
    """The caller's own cancel scope ends a slow attempt: it is cancelled, not a NimTimeout."""
    emulator.set_latency(30.0)
    async with make_client(emulator) as client:
        with anyio.move_on_after(0.1) as outside:
            await client.send_attach_msg("alice", "bob", "x")
        assert outside.cancelled_caught
        emulator.set_latency(0.0)
        await client.send_attach_msg("alice", "bob", "x")


async def test_attempts_that_never_yield_to_the_loop_leave_no_timer_behind() -> None:
    """A transport that answers at once (httpx.MockTransport): the loop holds one timer at most."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=SENT))
    async with make_client(transport) as client:
        for number in range(500):
            await client.send_msg("alice", f"user{number}", nim.Text("hi"))
        # Each attempt's deadline used to be a timer of its own, cancelled but kept
        # by asyncio until its loop turned: 50,000 calls held 10 MB of them.
        scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
        assert len(scheduled) <= 1
