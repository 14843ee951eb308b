"""The waiters of one rate budget held in Redis, in one event loop, first come, first served.

A waiter at the front of the queue (the leader) asks the budget for slots for
the waiters behind it, and what comes back goes to the front of the queue: a
budget a network hop away costs a round trip for many waiters, not one per
call. Between hand-outs the leader yields one turn of the event loop, so the
waiters given slots send their calls before it asks again: a process takes
slots no faster than it uses them. When the budget is full and says when its
first slot frees, the next ask leaves one round trip before then, to reach the
budget as that slot frees.

A queue may also keep a second ask on its way (``asks_in_flight=2``): while the
leader's ask is out and slots are coming back, another waiter asks, half a
round trip later, for the waiters the first does not cover. Measured with
Redis 5 ms away and three CPU-bound processes sharing 1000 calls/s, a second
ask did not raise the share of the budget used (84.0% against 84.3% with one,
eight runs each): the CPU, not the round trip, set the pace, and the last
window, served by whichever process had the most calls left, spread wider.
``RedisLimiter`` keeps one ask on its way.

(``LocalLimiter`` keeps its own queue, a lock handed from waiter to waiter: its
budget costs no round trip, and admitting one waiter per event-loop turn keeps
each call's slot shorter than handing out a burst at once, measured 96.2% of
the budget at real 1 s windows against 95.5% with this queue.)
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from itertools import islice
from typing import Protocol

import anyio
import anyio.lowlevel

from ._errors import LimiterUnavailable, SlotTimeout
from ._limits import WaitBound, current_wait_bound

__all__ = ["SlotQueue", "SlotStore", "slot_timeout"]

# The holds of this many waiters at the front are read for one request: no
# budget we know of admits more in one window.
_FRONT = 1000
# Entries of departed bounded waiters tolerated in the deadline heap beyond
# twice the queue's length, before it is rebuilt.
_SLACK = 64


class SlotStore(Protocol):
    """Where a queue's slots come from: one budget, as seen from this event loop."""

    @property
    def round_trip(self) -> float:
        """Seconds one ask takes at best, as measured so far (0 before the first)."""
        ...

    def most(self) -> int:
        """The most slots one ask should request now (at least 1)."""
        ...

    async def ask(self, wanted: int, hold: float) -> tuple[list[str], float, float]:
        """Grant up to ``wanted`` slots, each held for at most ``hold`` seconds.

        Returns the granted slot ids (possibly none) and, when none, how long
        to wait before asking again (finite: a store that cannot tell returns
        its poll interval) and the seconds until a slot may free at the
        earliest (exact, or a lower bound). A cancel must not lose slots the
        store granted: the round trip, once sent, runs to its end shielded.

        Raises:
            LimiterUnavailable: The store could not be asked.
        """
        ...

    async def give_back(self, slot_id: str) -> None:
        """Return a slot that was granted but will never be used."""
        ...


class _Ticket:
    """One waiter: the slot it was given, or the failure that ended its wait."""

    __slots__ = ("bound", "failure", "hold", "reports", "slot", "too_far", "woken")

    def __init__(self, hold: float, bound: WaitBound | None, reports: int) -> None:
        self.hold = hold
        self.bound = bound
        # The queue's count of "no slot yet" answers when this waiter joined.
        self.reports = reports
        self.slot: str | None = None
        self.failure: str | None = None
        # Seconds to a free slot, when that is past the waiter's deadline.
        self.too_far: float | None = None
        self.woken = anyio.Event()


class SlotQueue:
    """The FIFO queue of one budget's waiters in one event loop.

    Guarantees: slots go to the waiters in the order they queued; every slot
    granted goes to exactly one waiter, or back to the store when its waiter
    left while the ask was on its way; at most ``asks_in_flight`` asks are on
    their way at once, and together they never ask for more slots than there
    are waiters.

    When an ask fails (``LimiterUnavailable``), every waiter queued at that
    moment fails with it at once, not one timeout after another: with a hung
    Redis, the hundredth waiter would otherwise fail after a hundred timeouts.
    A waiter that queues later asks again.

    Joining, leaving (served, refused or cancelled) and being served each
    cost O(1) whatever the queue's length, and so does an answer that refuses
    nobody: cancelling N waiters costs O(N), and a long queue polling a full
    budget costs nothing per waiter.

    Args:
        asks_in_flight: The most asks on their way at once: 1, or 2 for a
            second ask while slots are coming back.
    """

    __slots__ = (
        "_askers",
        "_bounded",
        "_changed",
        "_covered",
        "_depth",
        "_free_at",
        "_idle",
        "_in_flight",
        "_joined",
        "_next_ask",
        "_reports",
        "_spaced_until",
        "_waiting",
    )

    def __init__(self, asks_in_flight: int = 1) -> None:
        if asks_in_flight not in (1, 2):
            raise ValueError(f"asks_in_flight must be 1 or 2, not {asks_in_flight!r}")
        self._depth = asks_in_flight
        # Insertion-ordered, with O(1) removal anywhere and at the front.
        self._waiting: OrderedDict[_Ticket, None] = OrderedDict()
        # The bounded waiters by deadline (a heap), so that a refusal looks at
        # those it refuses only. Entries of waiters gone are dropped lazily.
        self._bounded: list[tuple[float, int, _Ticket]] = []
        self._joined = 0  # ties in the heap fall back to the order of arrival
        # "No slot yet" answers so far, and when the last one said a slot may
        # free (loop clock): a waiter that leaves by its deadline reads it then.
        self._reports = 0
        self._free_at = -math.inf
        # The waiters that ask (at most asks_in_flight); the first one leads:
        # only it asks when no ask is on its way.
        self._askers: list[_Ticket] = []
        self._in_flight = 0
        self._covered = 0  # slots asked for by the asks on their way
        # Loop clock: the earliest the next ask may start: with two asks, half
        # a round trip after the last one; after "no slot yet", when the first
        # slot frees.
        self._spaced_until = -math.inf
        self._next_ask = -math.inf
        # Askers waiting for `_changed`: an answer, a new waiter, a notify().
        self._idle = 0
        self._changed = anyio.Event()

    @property
    def asks_in_flight(self) -> int:
        """The most asks this queue keeps on their way at once."""
        return self._depth

    def notify(self) -> None:
        """Tell the askers that the budget changed (a slot was freed): ask again now."""
        self._next_ask = -math.inf
        self._wake_askers()

    def _wake_askers(self) -> None:
        if self._idle:
            self._changed.set()
            self._changed = anyio.Event()

    def _join(self, ticket: _Ticket) -> None:
        self._waiting[ticket] = None
        if ticket.bound is not None:
            self._joined += 1
            heapq.heappush(self._bounded, (ticket.bound.deadline, self._joined, ticket))
            if len(self._bounded) > 2 * len(self._waiting) + _SLACK:
                # Mostly waiters long gone: rebuild from those still queued
                # (amortised O(1) per waiter, and bounded memory).
                self._bounded = [entry for entry in self._bounded if entry[2] in self._waiting]
                heapq.heapify(self._bounded)
        if len(self._waiting) - 1 <= self._covered:
            # An asker with nothing left to ask for has something now.
            self._wake_askers()

    async def wait_for_slot(self, hold: float, store: SlotStore) -> str:
        """Queue, and return the id of the slot granted to this waiter.

        Args:
            hold: The longest this waiter will hold its slot, in seconds.
            store: Where the slots come from.

        Raises:
            LimiterUnavailable: The budget could not be asked, by this waiter
                or by an asker while this one was queued.
            SlotTimeout: The slot frees later than this waiter's bound allows.
        """
        # Read here, in the waiter's own task: the askers run in others.
        ticket = _Ticket(hold, current_wait_bound(), self._reports)
        self._join(ticket)
        try:
            while ticket.slot is None:
                _raise_if_ended(ticket)
                if len(self._askers) < self._depth:
                    await self._ask_until_served(ticket, store)
                else:
                    if ticket.woken.is_set():
                        ticket.woken = anyio.Event()
                    await ticket.woken.wait()
        except BaseException:
            self._waiting.pop(ticket, None)
            self._hand_on(ticket)
            if ticket.bound is not None and ticket.reports < self._reports:
                # Refused, or left at its deadline: the bound keeps the last
                # distance the budget gave while this waiter was queued.
                ticket.bound.free_at = self._free_at
            if ticket.slot is not None:
                # Granted, then cancelled before it could be used.
                with anyio.CancelScope(shield=True):
                    await store.give_back(ticket.slot)
            raise
        # Woken to ask, perhaps, and served instead: the part goes on.
        self._hand_on(ticket)
        return ticket.slot

    def _hand_on(self, leaving: _Ticket) -> None:
        """Wake the first waiter that does not ask yet, if an asker's part is free."""
        if len(self._askers) < self._depth:
            for ticket in self._waiting:
                if ticket is not leaving and ticket not in self._askers:
                    ticket.woken.set()
                    break

    def _may_ask(self, own: _Ticket) -> float:
        """Seconds until ``own`` may start an ask: 0 now, ``inf`` until something changes."""
        if self._in_flight >= self._depth or len(self._waiting) <= self._covered:
            return math.inf
        if self._askers[0] is not own and (self._in_flight == 0 or self._next_ask > -math.inf):
            # The leader asks alone while no ask is on its way, and while the
            # budget is full: a second ask joins in only while slots come back.
            return math.inf
        return max(self._next_ask, self._spaced_until) - anyio.current_time()

    async def _ask_until_served(self, own: _Ticket, store: SlotStore) -> None:
        self._askers.append(own)
        try:
            while own.slot is None:
                _raise_if_ended(own)
                delay = self._may_ask(own)
                if delay <= 0:
                    if await self._ask(own, store) and own.slot is None:
                        # The waiters just served send their calls before this
                        # one asks again: a process takes slots no faster than
                        # it uses them, and leaves the rest to the others.
                        await anyio.lowlevel.checkpoint()
                    continue
                changed = self._changed
                self._idle += 1
                try:
                    with anyio.move_on_after(delay):
                        await changed.wait()
                finally:
                    self._idle -= 1
        finally:
            self._askers.remove(own)
            # The other asker may lead now, and the first waiter that does not
            # ask yet takes this one's part over (not this one: it may be
            # leaving, cancelled).
            self._wake_askers()
            self._hand_on(own)

    async def _ask(self, own: _Ticket, store: SlotStore) -> bool:
        """Ask once for the waiters no ask on its way covers, and serve the front of the queue.

        Returns whether any slot was granted.
        """
        count = min(len(self._waiting) - self._covered, store.most())
        hold = max(
            ticket.hold for ticket in islice(self._waiting, min(self._covered + count, _FRONT))
        )
        now = anyio.current_time()
        # With two asks on their way, the next goes half a round trip after
        # this one: the two then reach the budget at even intervals.
        self._spaced_until = now + store.round_trip / 2 if self._depth == 2 else now
        self._covered += count
        self._in_flight += 1
        self._wake_askers()
        try:
            granted, wait, distance = await store.ask(count, hold)
        except LimiterUnavailable as exc:
            # Met first by another asker: this waiter fails with that one.
            _raise_if_ended(own)
            self._fail_waiters(str(exc), own)
            raise
        finally:
            self._covered -= count
            self._in_flight -= 1
            self._wake_askers()
        served = min(len(granted), len(self._waiting))
        for slot_id in granted[:served]:
            ticket, _ = self._waiting.popitem(last=False)
            ticket.slot = slot_id
            ticket.woken.set()
        if len(granted) > served:  # waiters that left while the ask was on its way
            with anyio.CancelScope(shield=True):
                for slot_id in granted[served:]:
                    await store.give_back(slot_id)
        if granted:
            self._next_ask = -math.inf
            return True
        # Ask again when the first slot may free, timed to reach the store
        # then: one round trip early (an early ask only hears "not yet").
        self._next_ask = anyio.current_time() + max(min(wait, distance - store.round_trip), 0.0)
        self._refuse_beyond(distance, own)
        return False

    def _fail_waiters(self, failure: str, own: _Ticket) -> None:
        """End the wait of every waiter queued now but ``own``, with ``failure``."""
        for ticket in self._waiting:
            if ticket is not own:
                ticket.failure = failure
                ticket.woken.set()
        self._waiting.clear()
        self._bounded.clear()

    def _refuse_beyond(self, distance: float, own: _Ticket) -> None:
        """End the wait of every waiter whose bound ends before a slot frees ``distance`` from now.

        Costs O(1) plus O(log N) per waiter it refuses: only the bounded
        waiters whose deadline has come within reach are looked at.

        Raises:
            SlotTimeout: The asker's own bound is among them.
        """
        self._reports += 1
        self._free_at = anyio.current_time() + distance
        while self._bounded and self._bounded[0][0] < self._free_at:
            _, _, ticket = heapq.heappop(self._bounded)
            if ticket not in self._waiting:
                continue  # served or gone already
            del self._waiting[ticket]
            ticket.too_far = distance
            ticket.woken.set()
        if own.too_far is not None:
            raise slot_timeout(own.too_far)


def _raise_if_ended(ticket: _Ticket) -> None:
    """Raise what ended the wait of ``ticket`` without a slot, if anything did."""
    if ticket.too_far is not None:
        raise slot_timeout(ticket.too_far)
    if ticket.failure is not None:
        raise LimiterUnavailable(
            f"{ticket.failure} (met by a waiter ahead of this one); nothing was sent"
        )


def slot_timeout(distance: float) -> SlotTimeout:
    """The refusal of a bounded waiter whose slot frees ``distance`` seconds from now."""
    return SlotTimeout(
        f"no rate-limit slot frees within {distance:.3g} s; it was not sent", retry_after=distance
    )
