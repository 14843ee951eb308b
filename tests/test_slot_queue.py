"""SlotQueue: the per-event-loop queue in front of a budget held elsewhere (Redis).

A stand-in store answers the queue's asks here, so that order, refusals,
failures and cancellations are checked without a network. None of these
tests measures time; real time only bounds how long a test may wait.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sized

import anyio
import anyio.abc
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

    round_trip = 0.0

    def __init__(self, free: int = 0, distance: float = 60.0) -> None:
        self.free = free
        self.distance = distance
        self.failure: str | None = None
        self.granted: list[str] = []
        self.given_back: list[str] = []
        self.asked: list[int] = []
        self.answered: list[float] = []  # the loop clock at each answer
        self.on_ask: Callable[[int], object] | None = None

    def most(self) -> int:
        return 100

    async def ask(self, wanted: int, hold: float) -> tuple[list[str], float, float]:
        self.asked.append(wanted)
        if self.on_ask is not None:
            self.on_ask(wanted)
        await anyio.lowlevel.checkpoint()  # the round trip
        self.answered.append(anyio.current_time())
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
            await queue.wait_for_slot(1.0, store)
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


async def test_five_thousand_cancelled_waiters_leave_the_queue_usable() -> None:
    """5,000 waiters on a full store are all cancelled: none was granted a slot, and the next
    waiter gets the first slot that frees, the only one granted."""
    store = _Store()
    queue = SlotQueue()
    served = 0

    async def waiter() -> None:
        nonlocal served
        await queue.wait_for_slot(1.0, store)
        served += 1

    async with anyio.create_task_group() as group:
        for _ in range(5_000):
            group.start_soon(waiter)
        await _settle()  # every one queued, the askers polling the full store
        group.cancel_scope.cancel()
    assert served == 0
    assert store.granted == []
    store.free = 1
    with anyio.fail_after(PATIENCE):
        assert await queue.wait_for_slot(1.0, store) == "slot-0"
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
                outcomes[number] = await queue.wait_for_slot(1.0, store)
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
            await queue.wait_for_slot(1.0, store)

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for _ in range(500):
                group.start_soon(served)
    assert len(store.granted) == 500
    refused: list[int] = []

    async def waiter(number: int) -> None:
        with bounded_wait(anyio.current_time() + (30 if number % 2 else 90)):
            try:
                await queue.wait_for_slot(1.0, store)
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
    with anyio.fail_after(PATIENCE):
        deadline = anyio.current_time() + 100
        with bounded_wait(deadline) as bound, anyio.CancelScope() as waiting:
            async with anyio.create_task_group() as group:
                group.start_soon(queue.wait_for_slot, 1.0, store)
                await _until(store.answered, 3)
                waiting.cancel()
    said = store.answered[-1] + store.distance
    assert bound is not None
    assert bound.free_at is not None
    assert said <= bound.free_at < said + 1


async def test_a_failed_ask_fails_every_waiter_queued_at_once() -> None:
    """The store cannot be reached: the asker and the nine waiters queued behind it all fail
    with LimiterUnavailable; a waiter that comes later asks again and is served."""
    store = _Store()
    queue = SlotQueue()
    failures: list[str] = []

    async def waiter() -> None:
        try:
            await queue.wait_for_slot(1.0, store)
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
        assert await queue.wait_for_slot(1.0, store) == "slot-0"


async def test_slots_granted_to_waiters_that_left_meanwhile_are_given_back() -> None:
    """Three waiters asked for in one ask; two leave while it is on its way: the two slots
    granted for them go back to the store, the third is used."""
    store = _Store()
    queue = SlotQueue()
    got: list[str] = []
    scopes = [anyio.CancelScope() for _ in range(3)]

    def on_ask(wanted: int) -> None:
        if wanted == 3:
            scopes[1].cancel()
            scopes[2].cancel()

    async def waiter(number: int) -> None:
        with scopes[number]:
            got.append(await queue.wait_for_slot(1.0, store))

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for number in range(3):
                group.start_soon(waiter, number)
            await _settle()  # the full store's answers are in: no ask on its way
            store.free = 3
            store.on_ask = on_ask
            queue.notify()
    assert got == ["slot-0"]
    assert store.asked[-1] == 3
    assert sorted(store.given_back) == ["slot-1", "slot-2"]


class _HeldStore:
    """Each ask waits until the test answers it: ``answer(n)`` grants the oldest ask up to
    ``n`` slots, ``answer(n, newest=True)`` the newest; ``fail()`` fails the oldest."""

    round_trip = 0.0

    def __init__(self, most: int) -> None:
        self._most = most
        self.pending: list[tuple[int, anyio.Event, list[object]]] = []
        self.asked: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.granted: list[str] = []
        self.given_back: list[str] = []

    def most(self) -> int:
        return self._most

    async def ask(self, wanted: int, hold: float) -> tuple[list[str], float, float]:
        self.asked.append(wanted)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        answered = anyio.Event()
        outcome: list[object] = []
        self.pending.append((wanted, answered, outcome))
        # Shielded, as a real round trip once sent (bounded, should a test fail).
        with anyio.move_on_after(PATIENCE, shield=True):
            await answered.wait()
        self.in_flight -= 1
        granted = outcome[0] if outcome else 0
        if isinstance(granted, Exception):
            raise granted
        assert isinstance(granted, int)
        slots = [f"slot-{len(self.granted) + number}" for number in range(granted)]
        self.granted += slots
        return slots, POLL, 60.0

    def answer(self, count: int, *, newest: bool = False) -> None:
        wanted, answered, outcome = self.pending.pop(-1 if newest else 0)
        outcome.append(min(count, wanted))
        answered.set()

    def fail(self) -> None:
        _, answered, outcome = self.pending.pop(0)
        outcome.append(nim.LimiterUnavailable("store down"))
        answered.set()

    async def give_back(self, slot_id: str) -> None:
        self.given_back.append(slot_id)


def _in_slot_order(served: list[tuple[int, str]]) -> list[int]:
    """The waiters served, in the order the slots were handed out."""
    return [number for number, slot in sorted(served, key=lambda item: int(item[1][5:]))]


async def _queue_waiters(
    queue: SlotQueue, store: _HeldStore, count: int, group: anyio.abc.TaskGroup
) -> list[tuple[int, str]]:
    served: list[tuple[int, str]] = []

    async def waiter(number: int) -> None:
        served.append((number, await queue.wait_for_slot(1.0, store)))

    for number in range(count):
        group.start_soon(waiter, number)
    await _settle()
    return served


async def _answer_all(store: _HeldStore, count: int) -> None:
    while store.pending:
        store.answer(count)
        await _settle()


async def test_one_ask_in_flight_is_one_ask_at_a_time() -> None:
    """The default: while the leader's ask is out nobody else asks; answered, the next ask
    goes for as many waiters as one ask may cover."""
    store = _HeldStore(most=3)
    queue = SlotQueue()
    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            served = await _queue_waiters(queue, store, 10, group)
            assert store.asked == [1]
            store.answer(1)
            await _settle()
            assert store.asked == [1, 3]
            await _answer_all(store, 3)
    assert store.most_in_flight == 1
    assert _in_slot_order(served) == list(range(10))
    assert store.given_back == []


def test_a_queue_keeps_one_or_two_asks_on_their_way() -> None:
    """Any other number is refused."""
    with pytest.raises(ValueError, match="1 or 2"):
        SlotQueue(asks_in_flight=3)


async def test_a_second_ask_goes_out_while_the_first_is_on_its_way() -> None:
    """Ten waiters: the first asks for itself, the second for itself while that ask is out;
    no third ask goes out while both are. Answered, the asks go on two at a time until every
    waiter is served, in the order they queued."""
    store = _HeldStore(most=3)
    queue = SlotQueue(asks_in_flight=2)
    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            served = await _queue_waiters(queue, store, 10, group)
            assert store.asked == [1, 1]
            assert store.in_flight == 2
            await _answer_all(store, 3)
    assert store.most_in_flight == 2
    assert _in_slot_order(served) == list(range(10))
    assert sorted(slot for _, slot in served) == sorted(store.granted)
    assert store.given_back == []


async def test_the_asks_on_their_way_never_ask_for_more_than_the_waiters() -> None:
    """Five waiters, three slots an ask: once the first is served, the asks out cover the
    other four exactly (one and three), and no ask goes out for a waiter already covered; the
    newer ask, answered first, serves the front of the queue, the older one the last waiter."""
    store = _HeldStore(most=3)
    queue = SlotQueue(asks_in_flight=2)
    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            served = await _queue_waiters(queue, store, 5, group)
            store.answer(1)
            await _settle()
            assert store.asked == [1, 1, 3]
            store.answer(3, newest=True)
            await _settle()
            assert store.asked == [1, 1, 3]
            await _answer_all(store, 3)
    assert _in_slot_order(served) == list(range(5))
    assert store.asked == [1, 1, 3]
    assert store.given_back == []


async def test_a_failed_ask_fails_the_waiters_the_other_ask_was_for_too() -> None:
    """Two asks out; the first fails: every waiter queued fails at once, and the slot the
    second ask then brings back, with nobody left to take it, goes back to the store."""
    store = _HeldStore(most=3)
    queue = SlotQueue(asks_in_flight=2)
    failures: list[str] = []

    async def waiter() -> None:
        try:
            await queue.wait_for_slot(1.0, store)
        except nim.LimiterUnavailable as error:
            failures.append(str(error))

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for _ in range(7):
                group.start_soon(waiter)
            await _settle()
            assert store.in_flight == 2
            store.fail()
            await _settle()
            store.answer(3)
    assert len(failures) == 7
    assert sum("met by a waiter ahead of this one" in failure for failure in failures) == 6
    assert store.granted == ["slot-0"]
    assert store.given_back == ["slot-0"]


@pytest.mark.parametrize("asks_in_flight", [1, 2])
async def test_every_slot_reaches_one_waiter_or_the_store_whatever_is_cancelled(
    asks_in_flight: int,
) -> None:
    """Three hundred waiters, a fifth of them cancelled at random moments, answers of random
    size in random order: no waiter gets two slots, no slot goes to two waiters, every slot
    granted is used or given back, and the waiters served are served in the order they came."""
    rng = random.Random(11)
    store = _HeldStore(most=7)
    queue = SlotQueue(asks_in_flight)
    served: list[tuple[int, str]] = []
    scopes = [anyio.CancelScope() for _ in range(300)]

    async def waiter(number: int) -> None:
        with scopes[number]:
            served.append((number, await queue.wait_for_slot(1.0, store)))

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for number in range(300):
                group.start_soon(waiter, number)
            doomed = set(rng.sample(range(300), 60))
            while len(served) + sum(scope.cancelled_caught for scope in scopes) < 300:
                await anyio.lowlevel.checkpoint()
                if store.pending:
                    store.answer(rng.randrange(8), newest=rng.random() < 0.3)
                if doomed and rng.random() < 0.3:
                    scopes[doomed.pop()].cancel()
                await anyio.sleep(0.001)
                assert store.in_flight <= asks_in_flight
            group.cancel_scope.cancel()
    slots = [slot for _, slot in served]
    assert _in_slot_order(served) == sorted(number for number, _ in served)
    assert len(set(slots)) == len(slots)
    assert sorted(slots + store.given_back) == sorted(store.granted)
    assert store.most_in_flight <= asks_in_flight
