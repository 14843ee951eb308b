"""FifoSemaphore and FifoLock: turns handed out first come, first served, never lost to a cancel.

Every test here is about order and accounting; none measures time.
"""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest

from nim_async._fifo import FifoLock, FifoSemaphore

pytestmark = pytest.mark.anyio

# Real seconds a test may wait for something that must happen at once.
PATIENCE = 10.0


async def _settle() -> None:
    """Let every task that can run, run, until all wait."""
    await anyio.wait_all_tasks_blocked()


async def test_waiters_are_served_in_the_order_they_came() -> None:
    """Ten waiters behind a held lock get it one after another, in arrival order."""
    lock = FifoLock()
    order: list[int] = []

    async def waiter(number: int) -> None:
        async with lock:
            order.append(number)
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(PATIENCE):
        await lock.acquire()
        async with anyio.create_task_group() as group:
            for number in range(10):
                group.start_soon(waiter, number)
                await _settle()
            assert lock.waiting == 10
            lock.release()
    assert order == list(range(10))
    assert not lock.locked()


async def test_cancelled_waiters_leave_and_the_rest_keep_their_order() -> None:
    """Every third waiter of 30 is cancelled while queued: the others are served in order,
    the cancelled ones never hold the lock."""
    lock = FifoLock()
    order: list[int] = []
    scopes: dict[int, anyio.CancelScope] = {}

    async def waiter(number: int) -> None:
        with scopes.setdefault(number, anyio.CancelScope()):
            async with lock:
                order.append(number)

    with anyio.fail_after(PATIENCE):
        await lock.acquire()
        async with anyio.create_task_group() as group:
            for number in range(30):
                group.start_soon(waiter, number)
                await _settle()
            for number in range(0, 30, 3):
                scopes[number].cancel()
            await _settle()
            assert lock.waiting == 20
            lock.release()
    assert order == [number for number in range(30) if number % 3]
    assert not lock.locked()


async def test_a_waiter_cancelled_then_handed_the_turn_passes_it_on() -> None:
    """The first waiter is cancelled and, before it can leave, the lock is released to it:
    the second waiter gets the lock, the first does not, and the lock ends free."""
    lock = FifoLock()
    got: list[str] = []
    first_scope = anyio.CancelScope()

    async def first() -> None:
        with first_scope:
            async with lock:
                got.append("first")

    async def second() -> None:
        async with lock:
            got.append("second")

    with anyio.fail_after(PATIENCE):
        await lock.acquire()
        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await _settle()
            group.start_soon(second)
            await _settle()
            # In one step of this task: `first` is cancelled, then handed the turn.
            first_scope.cancel()
            lock.release()
    assert got == ["second"]
    assert first_scope.cancelled_caught
    assert not lock.locked()
    assert lock.waiting == 0


async def test_a_turn_handed_to_a_cancelled_last_waiter_goes_back_to_the_semaphore() -> None:
    """No one else waits: the turn the cancelled waiter was handed is free again."""
    semaphore = FifoSemaphore(1)
    scope = anyio.CancelScope()

    async def waiter() -> None:
        with scope:
            await semaphore.acquire()
            pytest.fail("the cancelled waiter kept the turn")

    with anyio.fail_after(PATIENCE):
        await semaphore.acquire()
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await _settle()
            scope.cancel()
            semaphore.release()
    assert semaphore.value == 1
    semaphore.acquire_nowait()


async def test_a_waiter_handed_the_turn_then_cancelled_holds_it_until_it_leaves() -> None:
    """Handed the turn first, cancelled next: it holds the lock (the cancel lands at its next
    checkpoint) and gives it back on the way out, to the waiter behind it."""
    lock = FifoLock()
    got: list[str] = []
    first_scope = anyio.CancelScope()

    async def first() -> None:
        with first_scope:
            async with lock:
                got.append("first")
                await anyio.lowlevel.checkpoint()
                got.append("first again")

    async def second() -> None:
        async with lock:
            got.append("second")

    with anyio.fail_after(PATIENCE):
        await lock.acquire()
        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await _settle()
            group.start_soon(second)
            await _settle()
            lock.release()
            first_scope.cancel()
    assert got == ["first", "second"]
    assert not lock.locked()


async def test_no_newcomer_overtakes_a_queued_waiter() -> None:
    """A turn given back while someone waits is that waiter's: acquire_nowait is refused."""
    semaphore = FifoSemaphore(1)
    served = anyio.Event()

    async def waiter() -> None:
        async with semaphore:
            served.set()

    with anyio.fail_after(PATIENCE):
        await semaphore.acquire()
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await _settle()
            semaphore.release()
            with pytest.raises(anyio.WouldBlock):
                semaphore.acquire_nowait()
            await served.wait()
    semaphore.acquire_nowait()


async def test_a_cancel_before_waiting_takes_no_turn() -> None:
    """acquire() in an already cancelled scope raises, and the free turn stays free."""
    semaphore = FifoSemaphore(2)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await semaphore.acquire()
    assert scope.cancelled_caught
    assert semaphore.value == 2


async def test_turns_are_never_lost_or_doubled_under_random_cancels() -> None:
    """Three turns, 300 tasks, a third of them cancelled at random moments: never more than
    three holders at once, every task not cancelled is served once and in arrival order, all
    three turns end free."""
    semaphore = FifoSemaphore(3)
    random_ = random.Random(7)
    holders = 0
    most = 0
    served: list[int] = []
    scopes: list[anyio.CancelScope] = []

    async def task(number: int) -> None:
        nonlocal holders, most
        with scopes[number]:
            async with semaphore:
                holders += 1
                most = max(most, holders)
                served.append(number)
                try:
                    for _ in range(random_.randrange(3)):
                        await anyio.lowlevel.checkpoint()
                finally:
                    holders -= 1

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for number in range(300):
                scopes.append(anyio.CancelScope())
                group.start_soon(task, number)
            doomed = random_.sample(range(300), 100)
            for number in doomed:
                scopes[number].cancel()
                if random_.random() < 0.5:
                    await anyio.lowlevel.checkpoint()
    cancelled = {number for number in range(300) if scopes[number].cancelled_caught}
    assert most <= 3
    assert served == sorted(set(served))  # in arrival order, each once
    assert set(served) | cancelled == set(range(300))
    assert semaphore.value == 3
    assert semaphore.waiting == 0


async def test_thousands_of_cancelled_waiters_leave_the_lock_usable() -> None:
    """5,000 waiters queued on a held lock are all cancelled: none got the lock, the queue
    is empty, and the next caller takes the lock once it is released."""
    lock = FifoLock()
    admitted = 0

    async def waiter() -> None:
        nonlocal admitted
        async with lock:
            admitted += 1

    await lock.acquire()
    async with anyio.create_task_group() as group:
        for _ in range(5_000):
            group.start_soon(waiter)
        await _settle()
        assert lock.waiting == 5_000
        group.cancel_scope.cancel()
    assert admitted == 0
    assert lock.waiting == 0
    lock.release()
    with anyio.fail_after(PATIENCE):
        async with lock:
            assert lock.locked()
    assert not lock.locked()


def test_releasing_a_free_lock_is_an_error() -> None:
    """A lock released more often than taken would admit two holders: refused."""
    with pytest.raises(RuntimeError, match="not held"):
        FifoLock().release()


def test_a_negative_initial_value_is_refused() -> None:
    """A semaphore cannot start owing turns."""
    with pytest.raises(ValueError, match="at least 0"):
        FifoSemaphore(-1)
