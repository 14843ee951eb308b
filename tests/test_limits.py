"""Rate, RateLimits and the in-process LocalLimiter.

The LocalLimiter's window arithmetic runs in virtual time: a FakeClock that
moves only when a test advances it. Real time only bounds how long a test
waits to see a slot granted (PATIENCE) or refused (MOMENT), never a result.
"""

from __future__ import annotations

import threading
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import nim_async as nim

from ._timing import FakeClock

pytestmark = pytest.mark.anyio

# Real seconds a call that should get its slot may take to get it: generous, so
# that a busy machine cannot fail a test; a correct limiter answers at once.
PATIENCE = 10.0
# Real seconds a call that should wait is watched while the fake clock stands
# still; a wrong limiter would let it in at once.
MOMENT = 0.05
# Real seconds between a waiter's looks at the fake clock.
POLL = 0.001


PER_SECOND = [
    "msg/sendMsg",
    "msg/sendAttachMsg",
    "msg/markReadMsg",
    "msg/markReadTeamMsg",
    "msg/recall",
    "msg/delMsgOneWay",
    "msg/delMsg",
    "msg/delRoamSession",
    "msg/upload",
    "msg/fileUpload",
    "history/delBroadcastMsgById",
]


def test_default_limits_are_the_documented_ones() -> None:
    """NetEase's default table: 100/s and a 10 s block; batches 120/min; broadcasts 10/min
    and 1000/day; job/nos/del 5 a day, blocked a day."""
    limits = nim.RateLimits.default()
    for action in PER_SECOND:
        assert limits.for_action(action) == nim.ActionLimits((nim.Rate(100, 1),), 10), action
    day = 86400
    assert limits.for_action("job/nos/del") == nim.ActionLimits((nim.Rate(5, day),), day)
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
    with pytest.raises(nim.ConfigurationError, match="action must be one of"):
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


def _limiter(clock: FakeClock) -> nim.LocalLimiter:
    return nim.LocalLimiter(clock=clock, poll_interval=POLL)


def _limits(*rates: nim.Rate, block: float = 0) -> nim.ActionLimits:
    return nim.ActionLimits(rates, block=block)


async def _take(limiter: nim.LocalLimiter, key: str, limits: nim.ActionLimits) -> None:
    """One call that must get its slot now: started and answered at the same instant."""
    with anyio.fail_after(PATIENCE):
        async with limiter.slot(key, limits, hold=1):
            pass


async def _waits(limiter: nim.LocalLimiter, key: str, limits: nim.ActionLimits) -> bool:
    """Whether a call asking now is kept waiting (it gives up after a real MOMENT)."""
    with anyio.move_on_after(MOMENT):
        async with limiter.slot(key, limits, hold=1):
            return False
    return True


async def _within_patience(event: anyio.Event) -> None:
    with anyio.fail_after(PATIENCE):
        await event.wait()


FIVE = _limits(nim.Rate(5, 32))


async def test_a_fresh_window_admits_its_whole_budget_at_once() -> None:
    """Five slots: five calls in flight together while no time passes; the sixth waits."""
    clock = FakeClock()
    limiter = _limiter(clock)
    async with AsyncExitStack() as in_flight:
        with anyio.fail_after(PATIENCE):
            for _ in range(5):
                await in_flight.enter_async_context(limiter.slot("app:fresh", FIVE, hold=1))
        assert await _waits(limiter, "app:fresh", FIVE)


async def test_a_call_in_flight_holds_its_slot_however_long_it_takes() -> None:
    """A slot is not freed by time passing while its call has no answer."""
    clock = FakeClock()
    limiter = _limiter(clock)
    one = _limits(nim.Rate(1, 32))
    async with limiter.slot("app:slow", one, hold=1):
        clock.advance(10_000)
        assert await _waits(limiter, "app:slow", one)


async def test_a_slot_frees_exactly_per_seconds_after_its_answer() -> None:
    """Calls answered 8 s after their start free their slots 32 s after the answer."""
    clock = FakeClock()
    limiter = _limiter(clock)
    async with AsyncExitStack() as in_flight:
        for _ in range(5):
            await in_flight.enter_async_context(limiter.slot("app:held", FIVE, hold=1))
        clock.advance(8)
    clock.advance(31.5)
    assert await _waits(limiter, "app:held", FIVE)
    clock.advance(0.5)
    for _ in range(5):
        await _take(limiter, "app:held", FIVE)
    assert await _waits(limiter, "app:held", FIVE)


async def test_a_failed_call_holds_its_slot_like_an_answered_one() -> None:
    """The server may have counted a call that raised: its slot frees `per` after the failure."""
    clock = FakeClock()
    limiter = _limiter(clock)
    one = _limits(nim.Rate(1, 32))
    with pytest.raises(OSError, match="reset"):
        async with limiter.slot("app:failed", one, hold=1):
            raise OSError("connection reset")
    clock.advance(31.5)
    assert await _waits(limiter, "app:failed", one)
    clock.advance(0.5)
    await _take(limiter, "app:failed", one)


async def test_a_waiter_is_let_in_when_the_clock_reaches_its_slot() -> None:
    """A call that finds the window full waits, and goes as soon as a slot frees."""
    clock = FakeClock()
    limiter = _limiter(clock)
    one = _limits(nim.Rate(1, 32))
    await _take(limiter, "app:wait", one)
    freed_at = clock() + 32
    admitted: list[float] = []
    entered = anyio.Event()

    async def wait_for_a_slot() -> None:
        async with limiter.slot("app:wait", one, hold=1):
            admitted.append(clock())
            entered.set()

    async with anyio.create_task_group() as group:
        group.start_soon(wait_for_a_slot)
        clock.advance(16)
        await anyio.sleep(MOMENT)
        assert admitted == []
        clock.advance(16)
        await _within_patience(entered)
    assert admitted == [freed_at]


@pytest.mark.parametrize("store", ["memory", "file"])
async def test_waiters_are_served_first_come_first_served(store: str, tmp_path: Path) -> None:
    """Budget 1, in memory or in a limiter file: eight callers start in the order they
    asked, one per window."""
    clock = FakeClock(1_700_000_000.0)  # wall-clock-like: the file's times are epoch seconds
    path = None if store == "memory" else tmp_path / "limits.sqlite"
    limiter = nim.LocalLimiter(path=path, clock=clock, poll_interval=POLL)
    one = _limits(nim.Rate(1, 1))
    send, receive = anyio.create_memory_object_stream[int](8)
    order: list[int] = []

    async def call(number: int) -> None:
        async with limiter.slot("app:fifo", one, hold=1):
            send.send_nowait(number)

    async with send, receive, anyio.create_task_group() as group:
        for number in range(8):
            group.start_soon(call, number)
            await anyio.lowlevel.checkpoint()
        for _ in range(8):
            with anyio.fail_after(PATIENCE):
                order.append(await receive.receive())
            await anyio.sleep(10 * POLL)
            with pytest.raises(anyio.WouldBlock):  # one slot per window
                receive.receive_nowait()
            clock.advance(1)
    assert order == list(range(8))


async def test_slots_that_free_together_let_their_waiters_in_together() -> None:
    """Five slots free at one instant: the five waiters queued for them all get in."""
    clock = FakeClock()
    limiter = _limiter(clock)
    for _ in range(5):
        await _take(limiter, "app:together", FIVE)
    admitted: list[float] = []
    all_in = anyio.Event()

    async def call() -> None:
        async with limiter.slot("app:together", FIVE, hold=1):
            admitted.append(clock())
            if len(admitted) == 5:
                all_in.set()

    async with anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(call)
        await anyio.sleep(MOMENT)
        assert admitted == []
        clock.advance(32)
        await _within_patience(all_in)
        await anyio.sleep(MOMENT)
        assert len(admitted) == 5  # the sixth waits for the next window
        clock.advance(32)
    assert admitted == [clock() - 32] * 5 + [clock()]


async def test_cancelled_waiters_leave_the_queue_and_the_rest_keep_their_order() -> None:
    """Budget 1: twelve callers queue, every third gives up; the other eight start in the
    order they asked, one per window, and no window is spent on one that left."""
    clock = FakeClock()
    limiter = _limiter(clock)
    one = _limits(nim.Rate(1, 1))
    await _take(limiter, "app:leave", one)
    send, receive = anyio.create_memory_object_stream[int](12)
    scopes = [anyio.CancelScope() for _ in range(12)]
    order: list[int] = []

    async def call(number: int) -> None:
        with scopes[number]:
            async with limiter.slot("app:leave", one, hold=1):
                send.send_nowait(number)

    async with send, receive, anyio.create_task_group() as group:
        for number in range(12):
            group.start_soon(call, number)
            await anyio.lowlevel.checkpoint()
        await anyio.sleep(MOMENT)
        for number in range(0, 12, 3):
            scopes[number].cancel()
        for _ in range(8):
            clock.advance(1)
            with anyio.fail_after(PATIENCE):
                order.append(await receive.receive())
            await anyio.sleep(10 * POLL)
            with pytest.raises(anyio.WouldBlock):  # one slot per window
                receive.receive_nowait()
    assert order == [number for number in range(12) if number % 3]


async def test_thousands_of_cancelled_waiters_leave_the_budget_as_it_was() -> None:
    """Two slots in flight, 5,000 callers queued behind them and all cancelled: none got a
    slot, none freed one; the next caller waits until the two are answered and their
    window has passed, then exactly two get in at once."""
    clock = FakeClock()
    limiter = nim.LocalLimiter(clock=clock, poll_interval=0.05)
    two = _limits(nim.Rate(2, 8))
    admitted = 0

    async def call() -> None:
        nonlocal admitted
        async with limiter.slot("app:crowd", two, hold=1):
            admitted += 1

    async with AsyncExitStack() as in_flight:
        for _ in range(2):
            await in_flight.enter_async_context(limiter.slot("app:crowd", two, hold=1))
        async with anyio.create_task_group() as group:
            for _ in range(5_000):
                group.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            group.cancel_scope.cancel()
        assert admitted == 0
        assert await _waits(limiter, "app:crowd", two)
    assert await _waits(limiter, "app:crowd", two)
    clock.advance(8)
    await _take(limiter, "app:crowd", two)
    await _take(limiter, "app:crowd", two)
    assert await _waits(limiter, "app:crowd", two)


async def test_a_block_holds_every_waiter_until_it_ends() -> None:
    """After block(), no slot is handed out before the block time has passed."""
    clock = FakeClock()
    limiter = _limiter(clock)
    await _take(limiter, "app:block", FIVE)
    await limiter.block("app:block", FIVE, 64)
    clock.advance(63.5)
    assert await _waits(limiter, "app:block", FIVE)
    clock.advance(0.5)
    await _take(limiter, "app:block", FIVE)


async def test_a_shorter_block_never_cuts_a_longer_one_short() -> None:
    """A second 416 with a shorter block leaves the first block's end in place."""
    clock = FakeClock()
    limiter = _limiter(clock)
    await limiter.block("app:blocks", FIVE, 64)
    await limiter.block("app:blocks", FIVE, 8)
    clock.advance(32)
    assert await _waits(limiter, "app:blocks", FIVE)
    clock.advance(32)
    await _take(limiter, "app:blocks", FIVE)


async def test_other_rates_for_one_action_keep_their_own_budget_and_share_the_block() -> None:
    """A client with a bigger plan is not capped by another's budget; a 416 holds both."""
    clock = FakeClock()
    limiter = _limiter(clock)
    small = _limits(nim.Rate(1, 512), block=8)
    big = _limits(nim.Rate(100, 512), block=8)
    await _take(limiter, "app:plans", small)
    assert await _waits(limiter, "app:plans", small)
    await _take(limiter, "app:plans", big)
    await limiter.block("app:plans", small, 8)
    assert await _waits(limiter, "app:plans", big)
    clock.advance(8)
    await _take(limiter, "app:plans", big)


async def test_every_rate_is_checked_and_recorded_together() -> None:
    """Broadcast's two rates: the long one stops calls the short one would admit."""
    clock = FakeClock()
    limiter = _limiter(clock)
    limits = _limits(nim.Rate(10, 0.5), nim.Rate(3, 64))
    for _ in range(3):
        await _take(limiter, "app:two", limits)
    clock.advance(1)
    assert await _waits(limiter, "app:two", limits)
    clock.advance(63)
    for _ in range(3):
        await _take(limiter, "app:two", limits)
    assert await _waits(limiter, "app:two", limits)


async def test_separate_limiters_never_share_a_budget() -> None:
    """Each LocalLimiter owns its budgets, even for the same key and rates."""
    clock = FakeClock()
    first, second = _limiter(clock), _limiter(clock)
    one = _limits(nim.Rate(1, 32))
    await _take(first, "app:own", one)
    await _take(second, "app:own", one)
    assert await _waits(first, "app:own", one)
    assert await _waits(second, "app:own", one)
    await first.block("app:own", one, 64)
    clock.advance(32)
    await _take(second, "app:own", one)


def test_event_loops_one_after_another_share_the_budget() -> None:
    """A worker running each job in its own loop (asyncio.run per task) keeps one budget."""
    clock = FakeClock()
    limiter = _limiter(clock)
    two = _limits(nim.Rate(2, 32))

    async def job() -> None:
        for _ in range(2):
            await _take(limiter, "app:loops", two)

    anyio.run(job)
    assert anyio.run(_waits, limiter, "app:loops", two)
    clock.advance(32)
    anyio.run(job)


def test_a_slot_released_on_another_thread_frees_a_waiter_here() -> None:
    """Threads share the budget; a waiter that no other loop can wake looks again by itself."""
    clock = FakeClock()
    limiter = _limiter(clock)
    one = _limits(nim.Rate(1, 32))
    holding, release, released = threading.Event(), threading.Event(), threading.Event()

    async def hold_a_slot() -> None:
        async with limiter.slot("app:threads", one, hold=1):
            holding.set()
            await anyio.to_thread.run_sync(release.wait)
        released.set()

    async def wait_for_it() -> float:
        admitted: list[float] = []
        entered = anyio.Event()

        async def call() -> None:
            async with limiter.slot("app:threads", one, hold=1):
                admitted.append(clock())
                entered.set()

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await anyio.sleep(MOMENT)
            assert admitted == []  # in flight on the other thread
            release.set()
            assert await anyio.to_thread.run_sync(released.wait, PATIENCE)
            await anyio.sleep(MOMENT)
            assert admitted == []  # answered, but per has not passed
            clock.advance(32)
            await _within_patience(entered)
        return admitted[0]

    thread = threading.Thread(target=anyio.run, args=(hold_a_slot,))
    thread.start()
    try:
        assert holding.wait(PATIENCE)
        released_at = clock()
        assert anyio.run(wait_for_it) == released_at + 32
    finally:
        release.set()
        thread.join(PATIENCE)


def test_the_poll_interval_must_be_positive() -> None:
    """A waiter that never looks again could wait for ever."""
    with pytest.raises(ValueError, match="poll_interval"):
        nim.LocalLimiter(poll_interval=0)


def test_for_action_takes_the_short_name_too() -> None:
    """for_action("sendBatchMsg") is the batch budget, not the 100/s fallback."""
    limits = nim.RateLimits.default()
    assert limits.for_action("sendBatchMsg") == limits.for_action("msg/sendBatchMsg")
    with pytest.raises(nim.ConfigurationError, match="action must be one of"):
        limits.for_action("sendBatchMsgs")
