"""A burst of calls starts at most PER_TURN per turn of the event loop, in arrival order,
and every call is answered once: the loop's timers and sockets are served in between."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest

import nim_async as nim
from nim_async._admission import PER_TURN

from ._support import make_client

pytestmark = pytest.mark.anyio

SENT = {"code": 200, "data": {"msgid": 1, "timetag": 2, "antispam": False}}


class Turns:
    """Counts the turns of the event loop: a callback that schedules itself again."""

    def __init__(self) -> None:
        self.number = 0
        self._running = True

    def start(self) -> None:
        asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._running = False

    def _tick(self) -> None:
        self.number += 1
        if self._running:
            asyncio.get_running_loop().call_soon(self._tick)


async def test_a_burst_starts_a_few_calls_per_turn_in_arrival_order() -> None:
    turns = Turns()
    arrivals: list[tuple[int, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        to = dict(httpx.QueryParams(request.content.decode()))["to"]
        arrivals.append((turns.number, to))
        return httpx.Response(200, json=SENT)

    calls = PER_TURN * 10 + 3
    async with make_client(httpx.MockTransport(answer)) as client:
        turns.start()
        async with anyio.create_task_group() as group:
            for number in range(calls):
                group.start_soon(client.send_msg, "alice", f"u{number:04}", nim.Text("hi"))
        turns.stop()
    assert sorted(to for _, to in arrivals) == [f"u{number:04}" for number in range(calls)]
    per_turn: dict[int, int] = {}
    for turn, _ in arrivals:
        per_turn[turn] = per_turn.get(turn, 0) + 1
    assert max(per_turn.values()) <= PER_TURN
    assert len(per_turn) >= calls // PER_TURN
    assert [to for _, to in arrivals] == sorted(to for _, to in arrivals), (
        "first come, first served"
    )


async def test_callers_cancelled_while_waiting_their_turn_send_nothing() -> None:
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(dict(httpx.QueryParams(request.content.decode()))["to"])
        return httpx.Response(200, json=SENT)

    async with make_client(httpx.MockTransport(answer)) as client:
        async with anyio.create_task_group() as group:
            for number in range(PER_TURN * 5):
                group.start_soon(client.send_msg, "alice", f"u{number}", nim.Text("hi"))
            # The first turn's calls were admitted (a MockTransport answers at once);
            # the rest are still waiting for theirs when the group is cancelled.
            await anyio.lowlevel.checkpoint()
            group.cancel_scope.cancel()
        admitted = len(sent)
        assert 0 < admitted < PER_TURN * 5
        # Nothing is stuck: a later burst is admitted and answered whole.
        async with anyio.create_task_group() as group:
            for number in range(PER_TURN * 2):
                group.start_soon(client.send_msg, "alice", f"v{number}", nim.Text("hi"))
    assert len(sent) == admitted + PER_TURN * 2
