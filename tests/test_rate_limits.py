"""Client-side rate limits end to end: zero 416, every call delivered once, budgets shared right.

The bursts run in real time against the strict emulator (its frequency control
reads the real monotonic clock) and assert correctness only. How much of the
budget a burst uses, and its time against the ideal, are measured by
``benchmarks/bench_limits.py`` at 0.5 s windows. The slot rule (held from the
start until ``per`` after the answer) keeps every server window within budget
whatever the time scale, so the windows here are shorter.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable

import anyio
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client
from ._timing import FakeClock, TimingTransport

pytestmark = pytest.mark.anyio

# Every window 0.25 s: 100 calls per 0.25 s (block 2.5 s); batches 120 per 0.25 s,
# broadcasts 10 per 0.25 s (blocks 0.25 s).
PER_SECOND_ACTIONS = nim.RateLimits.default().scaled(0.25)
PER_MINUTE_ACTIONS = nim.RateLimits.default().scaled(1 / 240)
# Two sendAttachMsg calls an hour: a third is refused at once (SlotTimeout).
TWO_AN_HOUR = nim.RateLimits.default().with_action("sendAttachMsg", nim.Rate(2, 3600))
# Real seconds: how long a call that should go may take (generous, for busy
# machines), and how long one that should wait is watched.
PATIENCE = 10.0
MOMENT = 0.1

Send = Callable[[nim.NimClient, int], Awaitable[object]]


async def _attach(client: nim.NimClient, number: int) -> None:
    await client.send_attach_msg("alice", f"user{number}", {"n": number})


async def _batch(client: nim.NimClient, number: int) -> None:
    result = await client.send_batch_attach_msg("alice", [f"user{number}"], "x")
    result.raise_for_failures()


async def _broadcast(client: nim.NimClient, number: int) -> None:
    await client.broadcast(f"user{number}")


def _delivered(emulator: NimEmulator) -> list[str]:
    """Every recipient (or broadcast text) the emulator accepted, sorted, repeats kept."""
    return sorted([m.to for m in emulator.messages] + [b.body for b in emulator.broadcasts])


def _everyone(count: int) -> list[str]:
    return sorted(f"user{number}" for number in range(count))


async def _refused_for_the_hour(client: nim.NimClient, number: int) -> bool:
    """Whether an attach call finds the hour's budget spent: refused at once (the default
    max_wait is far shorter than an hour) with the hour as its retry_after."""
    try:
        with anyio.fail_after(PATIENCE):
            await _attach(client, number)
    except nim.SlotTimeout as refused:
        return 3600 - PATIENCE < refused.retry_after <= 3600
    return False


@pytest.mark.parametrize(
    ("send", "count", "limits", "action"),
    [
        (_attach, 250, PER_SECOND_ACTIONS, "msg/sendAttachMsg"),
        (_batch, 300, PER_MINUTE_ACTIONS, "msg/sendBatchAttachMsg"),
        (_broadcast, 25, PER_MINUTE_ACTIONS, "msg/broadcastMsg"),
    ],
    ids=["250-attach", "300-batch", "25-broadcasts"],
)
async def test_a_concurrent_burst_gets_no_416_and_delivers_every_call_once(
    send: Send, count: int, limits: nim.RateLimits, action: str
) -> None:
    """Two and a half windows' worth started at once: all succeed, none twice, zero 416."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=limits)
    async with (
        make_client(
            emulator, rate_limits=limits, limiter=nim.LocalLimiter(), retry=nim.RetryPolicy()
        ) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(count):
            group.start_soon(send, client, number)

    assert emulator.rate_limited == 0
    assert [call.code for call in emulator.calls] == [200] * count
    assert _delivered(emulator) == _everyone(count)
    (rate, *_) = limits.for_action(action).rates
    stats = client.limiter_stats()[action]
    assert (stats.calls, stats.rate_limited) == (count, 0)
    assert stats.waits >= count - rate.calls  # all but the first window waited


async def test_a_fresh_window_sends_its_whole_budget_without_pacing() -> None:
    """Ten broadcasts (10 per minute) go out while the limiter's clock stands still; the
    eleventh would wait the minute (max_wait=None: it waits)."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limiter = nim.LocalLimiter(clock=FakeClock())
    async with make_client(
        emulator, rate_limits=nim.RateLimits.default(), limiter=limiter, max_wait=None
    ) as client:
        with anyio.fail_after(PATIENCE):
            async with anyio.create_task_group() as group:
                for number in range(10):
                    group.start_soon(_broadcast, client, number)
        with anyio.move_on_after(MOMENT) as waiting:
            await _broadcast(client, 10)
        assert waiting.cancelled_caught
        with pytest.raises(nim.SlotTimeout) as refused:
            await client.with_options(max_wait=1).broadcast("user10")
        assert refused.value.retry_after == 60  # the clock stood still: exactly the minute
    assert _delivered(emulator) == _everyone(10)


async def test_a_server_block_is_waited_out_before_any_retry() -> None:
    """A client allowed more than the server gets 416s; each retry waits out the block.

    The client's block starts when a 416 comes back, after the server's began,
    so every retry goes at least `block` after its 416 answer and succeeds:
    with two attempts each, all 30 calls are delivered once.
    """
    server = nim.RateLimits.default().with_action("sendAttachMsg", nim.Rate(20, 0.5), block=0.5)
    generous = server.with_action("sendAttachMsg", nim.Rate(1000, 0.5))
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=server)
    timing = TimingTransport(emulator.transport())
    async with (
        make_client(
            timing,
            rate_limits=generous,
            limiter=nim.LocalLimiter(),
            retry=nim.RetryPolicy(max_attempts=2, backoff_base=0),
        ) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(30):
            group.start_soon(_attach, client, number)

    assert _delivered(emulator) == _everyone(30)
    refused = {e.to: e.answered for e in timing.exchanges if e.code == 416}
    assert refused
    retries = [e for e in timing.exchanges if e.to in refused and e.code == 200]
    assert len(retries) == len(refused)
    assert all(e.sent >= refused[e.to] + 0.5 for e in retries)
    assert client.limiter_stats()["msg/sendAttachMsg"].rate_limited == emulator.rate_limited


async def test_clients_with_their_own_local_limiters_do_not_share_a_budget() -> None:
    """Two clients of one app, each given a LocalLimiter(): each gets the whole budget."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    first = make_client(emulator, rate_limits=TWO_AN_HOUR, limiter=nim.LocalLimiter())
    second = make_client(emulator, rate_limits=TWO_AN_HOUR, limiter=nim.LocalLimiter())
    async with first, second:
        with anyio.fail_after(PATIENCE):
            for number in range(2):
                await _attach(first, number)
                await _attach(second, 2 + number)
        assert await _refused_for_the_hour(first, 4)
        assert await _refused_for_the_hour(second, 5)
    assert _delivered(emulator) == _everyone(4)


async def test_clients_with_the_default_limiter_share_a_budget() -> None:
    """Two clients of one app with limiter=None draw from the process-wide LocalLimiter."""
    app_key = f"default-limiter-{uuid.uuid4().hex}"  # a budget no other test can touch
    emulator = NimEmulator(app_key, APP_SECRET)
    first, second = (
        make_client(emulator, app_key=app_key, rate_limits=TWO_AN_HOUR, limiter=None)
        for _ in range(2)
    )
    async with first, second:
        with anyio.fail_after(PATIENCE):
            await _attach(first, 0)
            await _attach(first, 1)
        assert await _refused_for_the_hour(second, 2)
    assert _delivered(emulator) == _everyone(2)


async def test_clients_sharing_one_limiter_get_no_416() -> None:
    """Two NimClients given one LocalLimiter draw from one budget: a burst across both, zero 416."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=PER_SECOND_ACTIONS)
    limiter = nim.LocalLimiter()
    clients = [
        make_client(emulator, rate_limits=PER_SECOND_ACTIONS, limiter=limiter) for _ in range(2)
    ]
    async with clients[0], clients[1], anyio.create_task_group() as group:
        for number in range(150):
            group.start_soon(_attach, clients[number % 2], number)
    assert emulator.rate_limited == 0
    assert _delivered(emulator) == _everyone(150)


async def test_without_client_limits_the_strict_server_blocks_a_burst() -> None:
    """The control experiment: rate_limits=None lets a burst trip the server's block."""
    slow_windows = nim.RateLimits.default().scaled(5)  # 100 per 5 s: the whole burst in one
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=slow_windows)
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


async def test_an_unlimited_client_reports_calls_but_no_waits() -> None:
    """With rate_limits=None nobody waits, but calls and 416 answers are still counted."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next("msg/sendAttachMsg", 416)
    async with make_client(
        emulator, rate_limits=None, retry=nim.RetryPolicy(max_attempts=1)
    ) as client:
        with pytest.raises(nim.RateLimited):
            await client.send_attach_msg("alice", "bob", "x")
        for _ in range(3):
            await client.send_attach_msg("alice", "bob", "x")
        stats = client.limiter_stats()
    (action,) = stats
    assert action == "msg/sendAttachMsg"
    assert (stats[action].calls, stats[action].waits, stats[action].rate_limited) == (4, 0, 1)
