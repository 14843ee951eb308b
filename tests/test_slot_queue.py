"""SlotQueue: the per-event-loop queue in front of a budget held elsewhere (Redis).

A stand-in store answers the queue's asks here, so that order, refusals,
failures and cancellations are checked without a network. None of these
tests measures time; real time only bounds how long a test may wait.
"""

from __future__ import annotations

import math
from collections.abc import Sized

import anyio
import anyio.lowlevel
import pytest

import nim_async as nim
from nim_async._limits import bounded_wait
from nim_async._slots import SlotQueue

pytestmark = pytest.mark.anyio

PATIENCE = 10.0
# Real seconds between the asker's looks at a full store.
POLL = 0.005


class _Store:
    """Grants up to ``free`` slots per ask; when none is free, says one frees in ``distance``."""

    def __init__(self, free: int = 0, distance: float = 60.0) -> None:
        self.free = free
        self.distance = distance
        self.failure: str | None = None
        self.granted: list[str] = []
        self.given_back: list[str] = []
        self.asked: list[int] = []

    async def ask(self, wanted: int, hold: float) -> tuple[list[str], float, float]:
        self.asked.append(wanted)
        await anyio.lowlevel.checkpoint()  # the round trip
        if self.failure is not None:
            raise nim.LimiterUnavailable(self.failure)
        count = min(wanted, self.free)
        self.free -= count
        slots = [f"slot-{len(self.granted) + number}" for number in range(count)]
        self.granted += slots
        if slots:
            return slots, 0.0, 0.0
        return [], POLL, self.distance

    async def give_back(self, slot_id: str) -> None:
        self.given_back.append(slot_id)


async def _settle() -> None:
    await anyio.wait_all_tasks_blocked()


async def _until(outcomes: Sized, count: int) -> None:
    """Wait until the waiters have noted ``count`` outcomes."""
    while len(outcomes) < count:  # noqa: ASYNC110 - counting outcomes
        await anyio.sleep(POLL)


async def test_waiters_cancelled_while_queued_leave_and_the_rest_keep_their_order() -> None:
    """Twelve waiters on a full store, every third cancelled: the others get the slots that
    free, one at a time, in arrival order; no slot goes to a waiter that left."""
    store = _Store()
    queue = SlotQueue()
    order: list[int] = []
    scopes = [anyio.CancelScope() for _ in range(12)]

    async def waiter(number: int) -> None:
        with scopes[number]:
            await queue.wait_for_slot(1.0, store.ask, store.give_back)
            order.append(number)

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for number in range(12):
                group.start_soon(waiter, number)
                await anyio.lowlevel.checkpoint()
            for number in range(0, 12, 3):
                scopes[number].cancel()
            for served in range(1, 9):
                store.free += 1
                queue.notify()
                await _until(order, served)
    assert order == [number for number in range(12) if number % 3]
    assert store.given_back == []
    assert len(store.granted) == 8


async def test_forty_thousand_cancelled_waiters_leave_the_queue_usable() -> None:
    """40,000 waiters on a full store are all cancelled: none was granted a slot, and the next
    waiter gets the first slot that frees, the only one granted."""
    store = _Store()
    queue = SlotQueue()
    served = 0

    async def waiter() -> None:
        nonlocal served
        await queue.wait_for_slot(1.0, store.ask, store.give_back)
        served += 1

    async with anyio.create_task_group() as group:
        for _ in range(40_000):
            group.start_soon(waiter)
        await _settle()
        assert max(store.asked) == 40_000
        group.cancel_scope.cancel()
    assert served == 0
    assert store.granted == []
    store.free = 1
    with anyio.fail_after(PATIENCE):
        assert await queue.wait_for_slot(1.0, store.ask, store.give_back) == "slot-0"
    assert store.asked[-1] == 1
    assert store.given_back == []


async def test_bounded_waiters_are_refused_by_their_own_deadline_only() -> None:
    """A slot 60 s away: the waiters bounded to 30 s fail at once with retry_after 60; those
    bounded to 120 s and the unbounded ones keep waiting, and are served in order."""
    store = _Store(distance=60.0)
    queue = SlotQueue()
    outcomes: dict[int, object] = {}
    bounds = [30.0, None, 120.0, 30.0, 120.0, None, 30.0]

    async def waiter(number: int) -> None:
        bound = bounds[number]
        deadline = math.inf if bound is None else anyio.current_time() + bound
        with bounded_wait(deadline):
            try:
                outcomes[number] = await queue.wait_for_slot(1.0, store.ask, store.give_back)
            except nim.SlotTimeout as error:
                outcomes[number] = error.retry_after

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for number in range(len(bounds)):
                group.start_soon(waiter, number)
                await anyio.lowlevel.checkpoint()
            await _until(outcomes, 3)
            assert outcomes == {0: 60.0, 3: 60.0, 6: 60.0}
            store.free = 4
            queue.notify()
    assert outcomes == {
        0: 60.0,
        1: "slot-0",
        2: "slot-1",
        3: 60.0,
        4: "slot-2",
        5: "slot-3",
        6: 60.0,
    }


async def test_refusals_stay_exact_after_many_bounded_waiters_came_and_went() -> None:
    """Five hundred bounded waiters are served and leave; then, of ten new bounded waiters,
    exactly the five whose bound ends before the next slot fail."""
    store = _Store(free=500, distance=60.0)
    queue = SlotQueue()

    async def served() -> None:
        with bounded_wait(anyio.current_time() + 600):
            await queue.wait_for_slot(1.0, store.ask, store.give_back)

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for _ in range(500):
                group.start_soon(served)
    assert len(store.granted) == 500
    refused: list[int] = []

    async def waiter(number: int) -> None:
        with bounded_wait(anyio.current_time() + (30 if number % 2 else 90)):
            try:
                await queue.wait_for_slot(1.0, store.ask, store.give_back)
            except nim.SlotTimeout:
                refused.append(number)

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for number in range(10):
                group.start_soon(waiter, number)
            await _until(refused, 5)
            await anyio.sleep(10 * POLL)
            group.cancel_scope.cancel()
    assert sorted(refused) == [1, 3, 5, 7, 9]


async def test_a_waiter_that_gives_up_keeps_the_last_distance_seen() -> None:
    """Bounded to 100 s while the store says a slot frees in 10 s: a waiter whose wait is
    ended from outside (the client's deadline scope) finds that time in its bound."""
    store = _Store(distance=10.0)
    queue = SlotQueue()
    said: list[float] = []
    original_ask = store.ask

    async def ask(wanted: int, hold: float) -> tuple[list[str], float, float]:
        answer = await original_ask(wanted, hold)
        said.append(anyio.current_time() + store.distance)
        return answer

    with anyio.fail_after(PATIENCE):
        deadline = anyio.current_time() + 100
        with bounded_wait(deadline) as bound, anyio.CancelScope() as waiting:
            async with anyio.create_task_group() as group:
                group.start_soon(queue.wait_for_slot, 1.0, ask, store.give_back)
                await _until(said, 3)
                waiting.cancel()
    assert bound is not None
    assert bound.free_at is not None
    assert said[-1] <= bound.free_at < said[-1] + 1


async def test_a_failed_ask_fails_every_waiter_queued_at_once() -> None:
    """The store cannot be reached: the asker and the nine waiters queued behind it all fail
    with LimiterUnavailable; a waiter that comes later asks again and is served."""
    store = _Store()
    queue = SlotQueue()
    failures: list[str] = []

    async def waiter() -> None:
        try:
            await queue.wait_for_slot(1.0, store.ask, store.give_back)
        except nim.LimiterUnavailable as error:
            failures.append(str(error))

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(waiter)
            await _settle()
            store.failure = "store down"
    assert len(failures) == 10
    assert sum("met by a waiter ahead of this one" in failure for failure in failures) == 9
    store.failure = None
    store.free = 1
    with anyio.fail_after(PATIENCE):
        assert await queue.wait_for_slot(1.0, store.ask, store.give_back) == "slot-0"


async def test_slots_granted_to_waiters_that_left_meanwhile_are_given_back() -> None:
    """Three waiters asked for; two leave while the ask is on its way: the two slots granted
    for them go back to the store, the third is used."""
    store = _Store(free=3)
    queue = SlotQueue()
    got: list[str] = []
    scopes = [anyio.CancelScope() for _ in range(3)]
    original_ask = store.ask

    async def slow_ask(wanted: int, hold: float) -> tuple[list[str], float, float]:
        if wanted == 3:
            scopes[1].cancel()
            scopes[2].cancel()
        return await original_ask(wanted, hold)

    async def waiter(number: int) -> None:
        with scopes[number]:
            got.append(await queue.wait_for_slot(1.0, slow_ask, store.give_back))

    store.free = 0
    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for number in range(3):
                group.start_soon(waiter, number)
            await _settle()
            store.free = 3
            queue.notify()
    assert len(got) == 1
    assert sorted(store.given_back + got) == sorted(store.granted)
