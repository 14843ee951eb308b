"""The whole-attempt deadline: one timer of the event loop for every attempt in flight.

httpx's timeouts bound each phase of a request (connect, each read), not a
server that drips its answer a byte at a time: each attempt also has a
deadline for the whole of it, after which it ends with ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import math
import sys
from types import TracebackType
from typing import Any

import anyio

__all__ = ["AttemptDeadline", "Deadlines"]


if sys.version_info >= (3, 11):

    class AttemptDeadline:
        """The scope of one attempt, which `Deadlines` expires: then ``TimeoutError``.

        asyncio.Timeout's rule (cancel the task; turn that cancellation, and
        only that one, into ``TimeoutError`` on the way out), without its
        timer, its state enum and its checks: an attempt enters one, and
        asyncio.Timeout costs about 3 µs a call where this costs a fraction.
        """

        __slots__ = ("_cancelling", "_expired", "_task")

        def __init__(self) -> None:
            self._task: asyncio.Task[Any] | None = None
            self._cancelling = 0
            self._expired = False

        async def __aenter__(self) -> AttemptDeadline:
            task = asyncio.current_task()
            if task is None:
                raise RuntimeError("an attempt's deadline needs a task")
            self._task = task
            self._cancelling = task.cancelling()
            return self

        async def __aexit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            traceback: TracebackType | None,
        ) -> None:
            task, self._task = self._task, None
            if (
                self._expired
                and task is not None
                and task.uncancel() <= self._cancelling
                and exc_type is asyncio.CancelledError
            ):
                # No other cancellation came meanwhile: this one was ours.
                raise TimeoutError from exc

        def expired(self) -> bool:
            """Whether the deadline ended the attempt."""
            return self._expired

        def cancel(self) -> None:
            """Expire the scope now (from a callback of the event loop)."""
            if self._task is not None and not self._expired:
                self._expired = True
                self._task.cancel()

else:  # pragma: no cover - the tests run on 3.11 and newer

    class AttemptDeadline:
        """The scope of one attempt, which `Deadlines` expires: then ``TimeoutError``."""

        __slots__ = ("_scope",)

        def __init__(self) -> None:
            self._scope = anyio.CancelScope()

        async def __aenter__(self) -> AttemptDeadline:
            self._scope.__enter__()
            return self

        async def __aexit__(self, *exc_info: Any) -> bool:
            self._scope.__exit__(*exc_info)
            if self._scope.cancelled_caught:
                raise TimeoutError
            return False

        def expired(self) -> bool:
            """Whether the deadline ended the attempt."""
            return self._scope.cancelled_caught

        def cancel(self) -> None:
            """Expire the scope now."""
            self._scope.cancel()


class Deadlines:
    """The deadlines of the attempts in flight, watched by one timer of the event loop.

    ``anyio.fail_after`` arms a timer per attempt and cancels it when the
    attempt ends; asyncio drops cancelled timers only as its loop turns, and a
    transport that answers without yielding to the loop (``httpx.MockTransport``,
    users' test doubles) never lets it turn: 50,000 calls left 10 MB of dead
    timers behind. Here one timer, armed for the earliest deadline, cancels the
    attempts past theirs; an attempt that ends in time leaves nothing behind.
    """

    __slots__ = ("_loop", "_pending", "_timer")

    def __init__(self) -> None:
        self._pending: dict[AttemptDeadline, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, scope: AttemptDeadline, seconds: float) -> None:
        """Cancel ``scope`` ``seconds`` from now, unless `forget` comes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._pending[scope] = deadline
        timer = self._timer
        if timer is not None and loop is self._loop and timer.when() <= deadline:
            return  # the timer fires first, and arms itself again for this one
        if timer is not None:
            timer.cancel()
        self._loop = loop
        self._timer = loop.call_at(deadline, self._expire)

    def forget(self, scope: AttemptDeadline) -> None:
        """Stop watching ``scope``: its attempt ended."""
        self._pending.pop(scope, None)

    def close(self) -> None:
        """Disarm the timer (the client is closed)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop = None

    def _expire(self) -> None:
        assert self._loop is not None
        self._timer = None
        now = self._loop.time()
        earliest = math.inf
        for scope, deadline in list(self._pending.items()):
            if deadline <= now:
                del self._pending[scope]
                scope.cancel()
            else:
                earliest = min(earliest, deadline)
        if earliest < math.inf:
            self._timer = self._loop.call_at(earliest, self._expire)
