"""The waiters of one rate budget held in Redis, in one event loop, first come, first served.

One waiter at a time (the asker) asks the budget for as many slots as there
are waiters, and hands what it gets to the front of the queue: a budget a
network hop away costs one round trip for the whole queue, not one per call.
Between hand-outs the asker yields one turn of the event loop, so the waiters
given slots send their calls before it asks again.

(``LocalLimiter`` keeps its own queue, a lock handed from waiter to waiter: its
budget costs no round trip, and admitting one waiter per event-loop turn keeps
each call's slot shorter than handing out a burst at once, measured 96.2% of
the budget at real 1 s windows against 95.5% with this queue.)
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from itertools import islice

import anyio
import anyio.lowlevel

from ._errors import LimiterUnavailable, SlotTimeout
from ._limits import WaitBound, current_wait_bound

__all__ = ["Ask", "GiveBack", "SlotQueue"]

# The holds of this many waiters at the front are read for one request: no
# budget we know of admits more in one window.
_FRONT = 1000
# Entries of departed bounded waiters tolerated in the deadline heap beyond
# twice the queue's length, before it is rebuilt.
_SLACK = 64

# ask(wanted, hold): grant up to `wanted` slots, each held for at most `hold`
# seconds; returns the granted slot ids (possibly none) and, when none, how
# long to wait before asking again (finite: a store that cannot tell returns
# its poll interval) and the seconds until a slot may free at the earliest
# (exact, or a lower bound).
Ask = Callable[[int, float], Awaitable[tuple[list[str], float, float]]]
# give_back(slot_id): a slot that was granted but will never be used.
GiveBack = Callable[[str], Awaitable[None]]


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

    When the asker's request fails (``LimiterUnavailable``), every waiter
    queued at that moment fails with it at once, not one timeout after
    another: with a hung Redis, the hundredth waiter would otherwise fail
    after a hundred timeouts. A waiter that queues later asks again.

    Joining, leaving (served, refused or cancelled) and being served each
    cost O(1) whatever the queue's length, and so does an answer that refuses
    nobody: cancelling N waiters costs O(N), and a long queue polling a full
    budget costs nothing per waiter.
    """

    __slots__ = ("_asking", "_bounded", "_changed", "_free_at", "_joined", "_reports", "_waiting")

    def __init__(self) -> None:
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
        self._asking = False
        self._changed = anyio.Event()

    def notify(self) -> None:
        """Tell the asker that the budget changed (a slot was given back): ask again now."""
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

    async def wait_for_slot(self, hold: float, ask: Ask, give_back: GiveBack) -> str:
        """Queue, and return the id of the slot granted to this waiter.

        Args:
            hold: The longest this waiter will hold its slot, in seconds.
            ask: How to ask the budget for slots.
            give_back: How to return a slot granted to a waiter that was
                cancelled before it could use it.

        Raises:
            LimiterUnavailable: The budget could not be asked, by this waiter
                or by the asker while this one was queued.
            SlotTimeout: The slot frees later than this waiter's bound allows.
        """
        # Read here, in the waiter's own task: the asker runs in another.
        ticket = _Ticket(hold, current_wait_bound(), self._reports)
        self._join(ticket)
        try:
            while ticket.slot is None:
                if ticket.too_far is not None:
                    raise _slot_timeout(ticket.too_far)
                if ticket.failure is not None:
                    raise LimiterUnavailable(
                        f"{ticket.failure} (met by a waiter ahead of this one); nothing was sent"
                    )
                if self._asking:
                    ticket.woken = anyio.Event()
                    await ticket.woken.wait()
                else:
                    await self._ask_until_served(ticket, ask, give_back)
        except BaseException:
            self._waiting.pop(ticket, None)
            if ticket.bound is not None and ticket.reports < self._reports:
                # Refused, or left at its deadline: the bound keeps the last
                # distance the budget gave while this waiter was queued.
                ticket.bound.free_at = self._free_at
            if ticket.slot is not None:
                # Granted, then cancelled before it could be used.
                with anyio.CancelScope(shield=True):
                    await give_back(ticket.slot)
            raise
        return ticket.slot

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
            raise _slot_timeout(own.too_far)

    async def _ask_until_served(self, own: _Ticket, ask: Ask, give_back: GiveBack) -> None:
        self._asking = True
        try:
            while own.slot is None:
                hold = max(ticket.hold for ticket in islice(self._waiting, _FRONT))
                try:
                    granted, wait, distance = await ask(len(self._waiting), hold)
                except LimiterUnavailable as exc:
                    for ticket in self._waiting:
                        if ticket is not own:
                            ticket.failure = str(exc)
                            ticket.woken.set()
                    self._waiting.clear()
                    self._bounded.clear()
                    raise
                unused = granted[len(self._waiting) :]
                for slot_id in granted[: len(self._waiting)]:
                    ticket, _ = self._waiting.popitem(last=False)
                    ticket.slot = slot_id
                    ticket.woken.set()
                if unused:  # waiters cancelled while the asker was asking
                    with anyio.CancelScope(shield=True):
                        for slot_id in unused:
                            await give_back(slot_id)
                if not granted:
                    self._refuse_beyond(distance, own)
                    changed = self._changed
                    with anyio.move_on_after(wait):
                        await changed.wait()
                elif own.slot is None:
                    await anyio.lowlevel.checkpoint()
        finally:
            self._asking = False
            # The next waiter takes the asking over (not this one: it may be
            # leaving, cancelled).
            for ticket in self._waiting:
                if ticket is not own:
                    ticket.woken.set()
                    break


def _slot_timeout(distance: float) -> SlotTimeout:
    return SlotTimeout(
        f"no rate-limit slot frees within {distance:.3g} s; it was not sent", retry_after=distance
    )
