"""Client-side rate limits against the strict emulator: no 416, and no idle capacity.

Time is compressed (windows of 0.5 s) so that the round trip does not dominate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import anyio
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._timing import TimingTransport, elapsed_seconds, ideal_seconds
from .conftest import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

# Every window 0.5 s: 100 calls per 0.5 s (block 5 s); batches 120 per 0.5 s,
# broadcasts 10 per 0.5 s (blocks 0.5 s).
PER_SECOND_ACTIONS = nim.RateLimits.default().scaled(0.5)
PER_MINUTE_ACTIONS = nim.RateLimits.default().scaled(1 / 120)

Send = Callable[[nim.NimClient, int], Awaitable[object]]


async def _attach(client: nim.NimClient, number: int) -> None:
    await client.send_attach_msg("alice", f"user{number}", {"n": number})


async def _batch(client: nim.NimClient, number: int) -> None:
    result = await client.send_batch_attach_msg("alice", [f"user{number}"], "x")
    result.raise_for_failures()


async def _broadcast(client: nim.NimClient, number: int) -> None:
    await client.broadcast(f"news {number}")


@pytest.mark.parametrize(
    ("send", "count", "limits", "action"),
    [
        (_attach, 600, PER_SECOND_ACTIONS, "msg/sendAttachMsg"),
        (_batch, 360, PER_MINUTE_ACTIONS, "msg/sendBatchAttachMsg"),
        (_broadcast, 30, PER_MINUTE_ACTIONS, "msg/broadcastMsg"),
    ],
    ids=["600-attach", "360-batch", "30-broadcasts"],
)
async def test_a_concurrent_burst_gets_no_416_and_uses_every_window(
    send: Send, count: int, limits: nim.RateLimits, action: str
) -> None:
    """All calls started at once succeed with zero 416, within 10% of the ideal time."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=limits)
    timing = TimingTransport(emulator.transport())
    async with (
        make_client(timing, rate_limits=limits, retry=nim.RetryPolicy()) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(count):
            group.start_soon(send, client, number)

    assert emulator.rate_limited == 0
    assert [call.code for call in emulator.calls] == [200] * count
    (rate, *_) = limits.for_action(action).rates
    ideal = ideal_seconds(timing.exchanges, rate.calls, rate.per)
    assert elapsed_seconds(timing.exchanges) <= 1.1 * ideal
    stats = client.limiter_stats()[action]
    assert (stats.calls, stats.rate_limited) == (count, 0)
    assert stats.waits >= count - rate.calls


async def test_a_fresh_window_sends_its_whole_budget_at_once() -> None:
    """Ten broadcasts go out together: no pacing inside a window."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=PER_MINUTE_ACTIONS)
    timing = TimingTransport(emulator.transport())
    async with (
        make_client(timing, rate_limits=PER_MINUTE_ACTIONS, retry=nim.RetryPolicy()) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(10):
            group.start_soon(_broadcast, client, number)
    sends = [exchange.sent for exchange in timing.exchanges]
    assert max(sends) - min(sends) < 0.05


async def test_a_server_block_is_waited_out_by_every_concurrent_caller() -> None:
    """A client allowed more than the server gets one 416; then nobody sends until the block ends.

    The server's block starts when the breach arrives and the client's when the
    416 comes back, so every request sent after the first 416 answer must come
    at least `block` later; and every call still succeeds.
    """
    server = nim.RateLimits.default().scaled(0.3)  # 100 per 0.3 s, block 3 s
    generous = server.with_action("sendAttachMsg", nim.Rate(1000, 0.3))
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=server)
    timing = TimingTransport(emulator.transport())
    async with (
        make_client(
            timing,
            rate_limits=generous,
            retry=nim.RetryPolicy(max_attempts=2, backoff_base=0),
        ) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(150):
            group.start_soon(_attach, client, number)

    assert len(emulator.messages) == 150
    first_416 = min(e.answered for e in timing.exchanges if e.code == 416)
    later = [e.sent for e in timing.exchanges if e.sent > first_416]
    assert later
    assert min(later) >= first_416 + 3.0 - 0.01
    assert client.limiter_stats()["msg/sendAttachMsg"].rate_limited == emulator.rate_limited


async def test_clients_of_one_app_in_one_process_share_the_budget() -> None:
    """Two NimClients with one app key draw from one LocalLimiter budget: still no 416."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=PER_SECOND_ACTIONS)
    clients = [make_client(emulator, rate_limits=PER_SECOND_ACTIONS) for _ in range(2)]
    async with anyio.create_task_group() as group:
        for number in range(300):
            group.start_soon(_attach, clients[number % 2], number)
    for client in clients:
        await client.aclose()
    assert emulator.rate_limited == 0
    assert len(emulator.messages) == 300


async def test_without_client_limits_the_strict_server_blocks_a_burst() -> None:
    """The control experiment: rate_limits=None lets a burst trip the server's block."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=PER_SECOND_ACTIONS)
    async with (
        make_client(emulator, retry=nim.RetryPolicy(max_attempts=1)) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(150):
            group.start_soon(_swallow, _attach(client, number))
    assert emulator.rate_limited == 50


async def _swallow(call: Awaitable[object]) -> None:
    with contextlib.suppress(nim.RateLimited):
        await call


def test_an_unlimited_client_reports_calls_but_no_waits() -> None:
    """limiter_stats() exists even with limiting off."""
    assert nim.LimiterStats() == nim.LimiterStats(0, 0, 0.0, 0)
