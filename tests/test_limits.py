"""Rate, RateLimits and the in-process LocalLimiter."""

from __future__ import annotations

import threading
import time

import anyio
import anyio.lowlevel
import pytest

import nim_async as nim

pytestmark = pytest.mark.anyio


def test_default_limits_are_the_documented_ones() -> None:
    """100/s and a 10 s block for every action; batches 120/min; broadcasts 10/min and 1000/day."""
    limits = nim.RateLimits.default()
    assert limits.for_action("msg/sendMsg") == nim.ActionLimits((nim.Rate(100, 1),), 10)
    assert limits.for_action("job/nos/del") == nim.ActionLimits((nim.Rate(100, 1),), 10)
    for batch in ("msg/sendBatchMsg", "msg/sendBatchAttachMsg"):
        assert limits.for_action(batch) == nim.ActionLimits((nim.Rate(120, 60),), 60)
    assert limits.for_action("msg/broadcastMsg") == nim.ActionLimits(
        (nim.Rate(10, 60), nim.Rate(1000, 86400)), 60
    )


def test_with_action_returns_a_changed_copy() -> None:
    """A bigger plan: the original stays as it was; short and long action names both work."""
    limits = nim.RateLimits.default()
    bigger = limits.with_action("sendMsg", nim.Rate(5000, 1))
    assert bigger.for_action("msg/sendMsg").rates == (nim.Rate(5000, 1),)
    assert bigger.for_action("msg/sendMsg").block == 10
    assert limits.for_action("msg/sendMsg").rates == (nim.Rate(100, 1),)
    longer_block = bigger.with_action("msg/sendMsg.action", block=30)
    assert longer_block.for_action("msg/sendMsg") == nim.ActionLimits((nim.Rate(5000, 1),), 30)


def test_with_action_refuses_an_unknown_action() -> None:
    """A typo must not silently create a limit nobody uses."""
    with pytest.raises(ValueError, match="unknown NIM action"):
        nim.RateLimits.default().with_action("sendMsgs", nim.Rate(1, 1))


def test_scaled_multiplies_every_period_and_block() -> None:
    """Same shape, compressed time."""
    scaled = nim.RateLimits.default().scaled(0.01)
    assert scaled.for_action("msg/sendBatchMsg") == nim.ActionLimits((nim.Rate(120, 0.6),), 0.6)
    assert scaled.for_action("msg/upload") == nim.ActionLimits((nim.Rate(100, 0.01),), 0.1)
    with pytest.raises(ValueError, match="positive"):
        nim.RateLimits.default().scaled(0)


@pytest.mark.parametrize(("calls", "per"), [(0, 1), (1, 0), (-1, 1)])
def test_a_rate_needs_positive_calls_and_period(calls: int, per: float) -> None:
    """Rate(0, 1) could never admit anything."""
    with pytest.raises(ValueError, match=r"calls|per"):
        nim.Rate(calls, per)


LIMITS = nim.ActionLimits((nim.Rate(5, 0.3),), block=0.4)


async def test_a_fresh_window_admits_its_whole_budget_at_once() -> None:
    """Five slots, five calls started together with no wait."""
    limiter = nim.LocalLimiter()
    started: list[float] = []

    async def call() -> None:
        async with limiter.slot("app:fresh", LIMITS, hold=1):
            started.append(anyio.current_time())

    begin = anyio.current_time()
    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(call)
    assert max(started) - begin < 0.05


async def test_a_slot_is_held_until_per_seconds_after_the_answer() -> None:
    """The sixth call starts only `per` after the first five answered, not after they started."""
    limiter = nim.LocalLimiter()
    answered: list[float] = []
    started: list[float] = []

    async def call(latency: float) -> None:
        async with limiter.slot("app:held", LIMITS, hold=1):
            started.append(anyio.current_time())
            await anyio.sleep(latency)
        answered.append(anyio.current_time())

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(call, 0.1)
        await anyio.sleep(0.01)
        group.start_soon(call, 0)
    assert started[-1] >= min(answered) + 0.3 - 0.01


async def test_waiters_are_served_first_come_first_served() -> None:
    """Budget 1: the callers start in the order they asked."""
    limiter = nim.LocalLimiter()
    one = nim.ActionLimits((nim.Rate(1, 0.02),), block=0)
    order: list[int] = []

    async def call(number: int) -> None:
        async with limiter.slot("app:fifo", one, hold=1):
            order.append(number)

    async with anyio.create_task_group() as group:
        for number in range(8):
            group.start_soon(call, number)
            await anyio.lowlevel.checkpoint()
    assert order == list(range(8))


async def test_a_block_holds_every_waiter_until_it_ends() -> None:
    """After block(), no slot is handed out before the block time has passed."""
    limiter = nim.LocalLimiter()
    async with limiter.slot("app:block", LIMITS, hold=1):
        pass
    blocked_at = anyio.current_time()
    await limiter.block("app:block", LIMITS, 0.2)
    async with limiter.slot("app:block", LIMITS, hold=1):
        assert anyio.current_time() - blocked_at >= 0.2


async def test_clients_of_one_app_share_one_budget() -> None:
    """Two LocalLimiter objects in one event loop draw from the same state."""
    first, second = nim.LocalLimiter(), nim.LocalLimiter()
    one = nim.ActionLimits((nim.Rate(1, 0.2),), block=0)
    async with first.slot("app:shared", one, hold=1):
        pass
    begin = anyio.current_time()
    async with second.slot("app:shared", one, hold=1):
        assert anyio.current_time() - begin >= 0.19


def test_event_loops_one_after_another_share_the_budget() -> None:
    """A worker running each job in its own loop (asyncio.run per task) keeps one budget."""
    two = nim.ActionLimits((nim.Rate(2, 0.3),), block=0)
    limiter = nim.LocalLimiter()

    async def job() -> float:
        started = time.monotonic()
        for _ in range(2):
            async with limiter.slot("app:loops", two, hold=1):
                pass
        return time.monotonic() - started

    assert anyio.run(job) < 0.1
    assert anyio.run(job) >= 0.28


def test_a_slot_released_on_another_thread_frees_a_waiter_here() -> None:
    """Threads share the budget; a waiter that cannot be woken across loops polls."""
    one = nim.ActionLimits((nim.Rate(1, 0.1),), block=0)
    limiter = nim.LocalLimiter()
    holding, release = threading.Event(), threading.Event()

    async def hold_a_slot() -> None:
        async with limiter.slot("app:threads", one, hold=1):
            holding.set()
            await anyio.to_thread.run_sync(release.wait)

    async def wait_for_it() -> float:
        started = time.monotonic()
        async with limiter.slot("app:threads", one, hold=1):
            return time.monotonic() - started

    thread = threading.Thread(target=anyio.run, args=(hold_a_slot,))
    thread.start()
    assert holding.wait(5)
    threading.Timer(0.2, release.set).start()
    waited = anyio.run(wait_for_it)
    thread.join(5)
    assert 0.3 - 0.01 <= waited < 0.3 + 0.2


async def test_other_rates_for_one_action_keep_their_own_budget_and_share_the_block() -> None:
    """A client with a bigger plan is not capped by another's budget; a 416 holds both."""
    small = nim.ActionLimits((nim.Rate(1, 5),), block=0.2)
    big = nim.ActionLimits((nim.Rate(100, 5),), block=0.2)
    limiter = nim.LocalLimiter()
    async with limiter.slot("app:plans", small, hold=1):
        pass
    started = anyio.current_time()
    async with limiter.slot("app:plans", big, hold=1):
        assert anyio.current_time() - started < 0.05
    await limiter.block("app:plans", small, 0.2)
    async with limiter.slot("app:plans", big, hold=1):
        assert anyio.current_time() - started >= 0.2


def test_for_action_takes_the_short_name_too() -> None:
    """for_action("sendBatchMsg") is the batch budget, not the 100/s fallback."""
    limits = nim.RateLimits.default()
    assert limits.for_action("sendBatchMsg") == limits.for_action("msg/sendBatchMsg")
    with pytest.raises(ValueError, match="unknown NIM action"):
        limits.for_action("sendBatchMsgs")
