"""Client-side rate limits: ``Rate``, ``RateLimits``, the ``Limiter`` protocol, ``LocalLimiter``.

The server counts a call when it *arrives*, somewhere between our start and our
answer, and blocks the whole action for 10 s or 60 s after a breach (facts:
"Frequency control"). Counting starts on our side is not enough: under load
arrivals drift. So a call holds its slot from the moment it starts until ``per``
seconds after its answer; then no server window, wherever it falls, can hold
more than ``calls`` arrivals, whatever the latency.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, runtime_checkable

import anyio
import attrs
from anyio.lowlevel import RunVar

from . import _actions

__all__ = [
    "ActionLimits",
    "Limiter",
    "LimiterStats",
    "LocalLimiter",
    "Rate",
    "RateLimits",
    "shared_local_limiter",
]


@attrs.frozen
class Rate:
    """At most ``calls`` calls started in any window of ``per`` seconds.

    Args:
        calls: The budget of one window.
        per: The window's length in seconds.
    """

    calls: int = attrs.field(validator=attrs.validators.gt(0))
    per: float = attrs.field(converter=float, validator=attrs.validators.gt(0))


@attrs.frozen
class ActionLimits:
    """Every rate one action must honour, and how long the server blocks it after a breach."""

    rates: tuple[Rate, ...]
    block: float = attrs.field(converter=float, validator=attrs.validators.ge(0))

    def scaled(self, factor: float) -> ActionLimits:
        """Return these limits with every period and the block multiplied by ``factor``."""
        return ActionLimits(
            tuple(Rate(rate.calls, rate.per * factor) for rate in self.rates), self.block * factor
        )


# facts, "Frequency control": 100/s with a 10 s block is the plan default for every action.
_PLAN_DEFAULT = ActionLimits((Rate(100, 1),), block=10)
_DAY = 24 * 60 * 60


def _frozen_mapping(value: Mapping[str, ActionLimits]) -> tuple[tuple[str, ActionLimits], ...]:
    return tuple(sorted(dict(value).items()))


@attrs.frozen
class RateLimits:
    """The client-side budget of every action, immutable.

    Build it with :meth:`default`, then derive changed copies with
    :meth:`with_action` (a bigger plan) or :meth:`scaled` (compressed time for
    tests and demos).

    Args:
        actions: Limits per action (``"msg/sendMsg"`` form).
        fallback: The limits of every action not listed.
    """

    actions: tuple[tuple[str, ActionLimits], ...] = attrs.field(
        default=(), converter=_frozen_mapping
    )
    fallback: ActionLimits = _PLAN_DEFAULT
    _by_action: dict[str, ActionLimits] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_action", dict(self.actions))

    @classmethod
    def default(cls) -> RateLimits:
        """Return the documented limits of the default plan.

        Every action: 100 calls/s, blocked 10 s after a breach. sendBatchMsg and
        sendBatchAttachMsg: 120 calls/min, blocked 60 s. broadcastMsg: 10 calls/min
        and 1000 calls/day, blocked 60 s (seed "消息功能" and facts "Frequency control").
        """
        batch = ActionLimits((Rate(120, 60),), block=60)
        return cls(
            {
                _actions.SEND_BATCH_MSG: batch,
                _actions.SEND_BATCH_ATTACH_MSG: batch,
                _actions.BROADCAST: ActionLimits((Rate(10, 60), Rate(1000, _DAY)), block=60),
            }
        )

    def for_action(self, action: str) -> ActionLimits:
        """Return the limits of ``action``: ``"sendBatchMsg"`` or ``"msg/sendBatchMsg"``.

        Raises:
            ValueError: Unknown action.
        """
        limits = self._by_action.get(action)
        if limits is None:
            limits = self._by_action.get(_actions.canonical_action(action), self.fallback)
        return limits

    def with_action(self, action: str, *rates: Rate, block: float | None = None) -> RateLimits:
        """Return a copy in which ``action`` has ``rates`` (and ``block``, if given).

        Args:
            action: ``"sendMsg"``, ``"msg/sendMsg"`` or ``"job/nos/del"``.
            *rates: The new rates; none keeps the current ones (to change only the block).
            block: Seconds the server blocks the action after a breach; None keeps it.

        Raises:
            ValueError: Unknown action.
        """
        path = _actions.canonical_action(action)
        current = self.for_action(path)
        changed = ActionLimits(rates or current.rates, current.block if block is None else block)
        return attrs.evolve(self, actions={**self._by_action, path: changed})

    def scaled(self, factor: float) -> RateLimits:
        """Return a copy with every period and block multiplied by ``factor``.

        ``RateLimits.default().scaled(0.01)`` turns 120 calls/min into 120 calls
        per 0.6 s: the same shape in compressed time, for tests and demos.
        """
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor}")
        return RateLimits(
            {action: limits.scaled(factor) for action, limits in self.actions},
            self.fallback.scaled(factor),
        )


@attrs.frozen
class LimiterStats:
    """What the rate limiter did for one action, since the client was created.

    Attributes:
        calls: Attempts that got a slot and went out.
        waits: Attempts that had to wait for their slot.
        wait_seconds: Time spent waiting for slots, in all.
        rate_limited: 416 answers seen (each blocks the action for its block time).
    """

    calls: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    rate_limited: int = 0


@runtime_checkable
class Limiter(Protocol):
    """Where the state of the rate limits lives: this process, or a shared store.

    ``key`` names one budget (the app key and the action); ``limits`` are its rates.
    """

    def slot(
        self, key: str, limits: ActionLimits, *, hold: float
    ) -> AbstractAsyncContextManager[None]:
        """Wait for a free slot under every rate of ``limits``, hold it while the body runs.

        The slot stays taken until each rate's ``per`` has passed after the body
        ends. ``hold`` is the longest the body can run (the request timeout); a
        shared store uses it to free slots of a crashed holder.
        Used as ``async with limiter.slot(...)``.
        """
        ...

    async def block(self, key: str, limits: ActionLimits, seconds: float) -> None:
        """Admit no call for ``key`` during the next ``seconds`` (the server blocked it)."""
        ...


class _Window:
    """One rate's slots: the ones in flight and the end times of the finished ones."""

    __slots__ = ("calls", "ends", "in_flight", "per")

    def __init__(self, rate: Rate) -> None:
        self.calls = rate.calls
        self.per = rate.per
        self.in_flight = 0
        # Appended as now + per with a monotonic now and a fixed per: always sorted.
        self.ends: deque[float] = deque()

    def free_at(self, now: float) -> float:
        """Return when a slot is free: ``now``, a later time, or inf (wait for an answer)."""
        while self.ends and self.ends[0] <= now:
            self.ends.popleft()
        excess = self.in_flight + len(self.ends) - self.calls
        if excess < 0:
            return now
        return self.ends[excess] if excess < len(self.ends) else math.inf


class _Budget:
    """The windows of one key and one shape of rates, shared by the whole process."""

    __slots__ = ("windows",)

    def __init__(self, limits: ActionLimits) -> None:
        self.windows = [_Window(rate) for rate in limits.rates]


class _Waiters:
    """Per event loop: the FIFO queue of one budget's waiters, and their wake-up call."""

    __slots__ = ("changed", "queue")

    def __init__(self) -> None:
        self.queue = anyio.Lock()  # anyio's Lock wakes its waiters in FIFO order
        self.changed = anyio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


# The budget is the app's, not one event loop's: a worker that runs each task
# in its own loop (asyncio.run per job) must not start every job afresh. So the
# windows and blocks live in the process, under a thread lock, on the
# monotonic clock that every asyncio loop uses.
_STATE_LOCK = threading.Lock()
_BUDGETS: dict[tuple[str, tuple[Rate, ...]], _Budget] = {}
_BLOCKED_UNTIL: dict[str, float] = {}
_waiters: RunVar[dict[tuple[str, tuple[Rate, ...]], _Waiters]] = RunVar("nim_async_waiters")
# A waiter whose slots are all held elsewhere (another loop or thread, which
# cannot wake it) looks again this often.
_POLL = 0.05


def forget_local_budgets() -> None:
    """Drop every in-process window and block (for test suites that reuse an app key)."""
    with _STATE_LOCK:
        _BUDGETS.clear()
        _BLOCKED_UNTIL.clear()


def _local_waiters(budget_key: tuple[str, tuple[Rate, ...]]) -> _Waiters:
    try:
        waiters = _waiters.get()
    except LookupError:
        waiters = {}
        _waiters.set(waiters)
    return waiters.setdefault(budget_key, _Waiters())


class LocalLimiter:
    """Rate limits held in this process, shared by every client, loop and thread in it.

    Two ``NimClient`` objects with the same app key in one process draw from one
    budget, because the state lives in the process, not in the limiter object.
    Clients configured with different rates for an action keep separate
    budgets (each honours its own); a block after a 416 holds them all.
    Waiters on one event loop are admitted first come, first served; a fresh
    window admits its whole budget at once.
    """

    __slots__ = ()

    @asynccontextmanager
    async def slot(self, key: str, limits: ActionLimits, *, hold: float) -> AsyncIterator[None]:
        """Wait for a free slot of every rate of ``key``; hold it while the body runs.

        Guarantees that, for each rate, the calls holding a slot at any moment
        (in flight, or answered less than ``per`` seconds ago) never exceed
        ``calls``, and that no slot is handed out before a block has passed.
        """
        budget_key = (key, limits.rates)
        with _STATE_LOCK:
            budget = _BUDGETS.setdefault(budget_key, _Budget(limits))
        waiters = _local_waiters(budget_key)
        async with waiters.queue:
            while True:
                with _STATE_LOCK:
                    now = time.monotonic()
                    ready_at = max(
                        _BLOCKED_UNTIL.get(key, -math.inf),
                        *(window.free_at(now) for window in budget.windows),
                    )
                    if ready_at <= now:
                        for window in budget.windows:
                            window.in_flight += 1
                        break
                changed = waiters.changed
                with anyio.move_on_after(ready_at - now if ready_at < math.inf else _POLL):
                    await changed.wait()
        try:
            yield
        finally:
            with _STATE_LOCK:
                end = time.monotonic()
                for window in budget.windows:
                    window.in_flight -= 1
                    window.ends.append(end + window.per)
            waiters.notify()

    async def block(self, key: str, limits: ActionLimits, seconds: float) -> None:
        """Admit no call for ``key``, whatever its rates, until ``seconds`` from now."""
        with _STATE_LOCK:
            until = time.monotonic() + seconds
            _BLOCKED_UNTIL[key] = max(_BLOCKED_UNTIL.get(key, -math.inf), until)


_SHARED = LocalLimiter()


def shared_local_limiter() -> LocalLimiter:
    """Return the process-wide ``LocalLimiter`` that every client without its own limiter uses."""
    return _SHARED
