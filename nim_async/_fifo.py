"""A first-come, first-served semaphore whose waiters leave in constant time.

anyio's ``Lock`` and ``Semaphore`` keep their waiters in a deque, and a waiter
that is cancelled removes itself with ``deque.remove``: a scan of the queue.
Cancelling every one of N queued callers (a shutdown, a burst given up) then
costs N²/2 steps, seconds for a few tens of thousands. Here the waiters sit in
an ``OrderedDict`` keyed by a token of their own, so that joining, leaving and
being woken each cost O(1), and cancelling N waiters costs O(N).
"""

from __future__ import annotations

from collections import OrderedDict
from types import TracebackType

import anyio
import anyio.lowlevel

__all__ = ["FifoLock", "FifoSemaphore"]


class _Token:
    """One waiter's place in the queue (its identity is the key)."""

    __slots__ = ("__weakref__",)


class FifoSemaphore:
    """At most ``value`` holders at a time; waiters get their turn strictly in arrival order.

    Guarantees:

    - A turn given back goes to the waiter that has waited longest, and to
      nobody else: no later arrival overtakes a queued waiter, even through
      ``acquire_nowait``, while anyone waits.
    - A waiter cancelled before it was handed a turn leaves the queue and
      takes nothing. A waiter cancelled after it was handed a turn (woken, but
      not yet running again) passes that turn on to the next waiter, or back to
      the semaphore. No turn is lost and no waiter is woken twice.
    - ``acquire`` (when it must wait), ``release`` and a cancellation each
      cost O(1), whatever the number of waiters.

    Like anyio's primitives it is bound to the event loop that first waits on
    it and is not thread-safe. It does not check who releases: any task may
    release a turn another task took (the caller keeps the accounting).

    Args:
        value: The number of turns free at the start.

    Raises:
        ValueError: ``value`` is negative.
    """

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"a semaphore's initial value must be at least 0, not {value}")
        self._value = value
        # Invariant: waiters queue only while no turn is free (a non-empty
        # queue means _value == 0), so release hands its turn straight on.
        self._waiters: OrderedDict[_Token, anyio.Event] = OrderedDict()

    @property
    def value(self) -> int:
        """Turns free now (0 while anyone waits)."""
        return self._value

    @property
    def waiting(self) -> int:
        """Waiters queued now: not yet handed a turn."""
        return len(self._waiters)

    def acquire_nowait(self) -> None:
        """Take a turn if one is free and nobody waits for it.

        Raises:
            anyio.WouldBlock: No turn is free, or others wait for one.
        """
        if self._value == 0 or self._waiters:
            raise anyio.WouldBlock
        self._value -= 1

    async def acquire(self) -> None:
        """Take a turn, waiting behind every earlier waiter if none is free.

        Always a checkpoint, as anyio's ``acquire``: a free turn is taken and
        then the event loop gets one turn of its own before this returns.

        Raises:
            anyio.get_cancelled_exc_class(): Cancelled; no turn is held then.
        """
        if self._value > 0 and not self._waiters:
            await anyio.lowlevel.checkpoint_if_cancelled()
            self._value -= 1
            try:
                await anyio.lowlevel.cancel_shielded_checkpoint()
            except BaseException:
                self.release()
                raise
            return
        token = _Token()
        woken = anyio.Event()
        self._waiters[token] = woken
        try:
            await woken.wait()
        except BaseException:
            if self._waiters.pop(token, None) is None:
                # The turn was handed over before the cancel landed: pass it on.
                self.release()
            raise

    def release(self) -> None:
        """Give a turn back: to the longest waiter, or to the semaphore if none waits."""
        if self._waiters:
            _, woken = self._waiters.popitem(last=False)
            woken.set()
        else:
            self._value += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class FifoLock(FifoSemaphore):
    """A `FifoSemaphore` of one turn: one holder at a time, waiters served in arrival order.

    It does not record its owner: a task that acquires it twice waits for
    itself for ever, and releasing an unheld lock raises.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(1)

    def locked(self) -> bool:
        """Whether the lock is held (or handed to a waiter that has not run yet)."""
        return self._value == 0

    def release(self) -> None:
        """Hand the lock to the longest waiter, or leave it free if none waits.

        Raises:
            RuntimeError: The lock is not held.
        """
        if self._value:
            raise RuntimeError("release of a FifoLock that is not held")
        super().release()
