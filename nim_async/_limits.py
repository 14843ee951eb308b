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
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, runtime_checkable

import anyio
import attrs
from anyio.lowlevel import RunVar

from . import _actions
from ._config import at_least, integer_at_least, refuse

__all__ = [
    "ActionLimits",
    "Limiter",
    "LimiterStats",
    "LocalLimiter",
    "Rate",
    "RateLimits",
    "shared_local_limiter",
]


def _seconds(value: object) -> object:
    # An int is taken as seconds; anything else is left for the validator to refuse.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


@attrs.frozen
class Rate:
    """At most ``calls`` calls started in any window of ``per`` seconds.

    Args:
        calls: The budget of one window.
        per: The window's length in seconds.
    """

    calls: int = attrs.field(validator=integer_at_least(1))
    per: float = attrs.field(validator=at_least(0, strict=True), converter=_seconds)


@attrs.frozen
class ActionLimits:
    """Every rate one action must honour, and how long the server blocks it after a breach."""

    rates: tuple[Rate, ...]
    block: float = attrs.field(validator=at_least(0), converter=_seconds)

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

    Build it with `default`, then derive changed copies with
    `with_action` (a bigger plan) or `scaled` (compressed time for
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

        Every other action (sendMsg, sendAttachMsg, markReadMsg, markReadTeamMsg,
        recall, delMsgOneWay, delMsg, delRoamSession, upload, fileUpload,
        delBroadcastMsgById): 100 calls/s, blocked 10 s after a breach.
        sendBatchMsg and sendBatchAttachMsg: 120 calls/min, blocked 60 s.
        broadcastMsg: 10 calls/min and 1000 calls/day, blocked 60 s.
        job/nos/del: 5 calls/day, blocked a day. Sources: seed "消息功能" (the
        batch and broadcast rows), facts "Frequency control", and NetEase's
        default frequency-control table for the message functions (job/nos/del).
        """
        batch = ActionLimits((Rate(120, 60),), block=60)
        return cls(
            {
                _actions.SEND_BATCH_MSG: batch,
                _actions.SEND_BATCH_ATTACH_MSG: batch,
                _actions.BROADCAST: ActionLimits((Rate(10, 60), Rate(1000, _DAY)), block=60),
                _actions.CLEAN_NOS: ActionLimits((Rate(5, _DAY),), block=_DAY),
            }
        )

    def for_action(self, action: str) -> ActionLimits:
        """Return the limits of ``action``: ``"sendBatchMsg"`` or ``"msg/sendBatchMsg"``.

        Raises:
            ConfigurationError: Unknown action.
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
            ConfigurationError: Unknown action.
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
            raise refuse("factor", "a positive number", factor)
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
    """The windows of one key and one shape of rates."""

    __slots__ = ("windows",)

    def __init__(self, limits: ActionLimits) -> None:
        self.windows = [_Window(rate) for rate in limits.rates]

    def free_at(self, now: float) -> float:
        """Return when every window has a free slot: ``now``, later, or inf."""
        return max(window.free_at(now) for window in self.windows)

    def take(self) -> None:
        for window in self.windows:
            window.in_flight += 1

    def release(self, now: float) -> None:
        for window in self.windows:
            window.in_flight -= 1
            window.ends.append(now + window.per)


class _Waiters:
    """Per event loop: the FIFO queue of one budget's waiters, and their wake-up call."""

    __slots__ = ("changed", "queue")

    def __init__(self) -> None:
        self.queue = anyio.Lock()  # anyio's Lock wakes its waiters in FIFO order
        self.changed = anyio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


_BudgetKey = tuple[str, tuple[Rate, ...]]

# A waiter looks at the budget again at least this often: a slot released in
# another event loop or thread cannot wake it (waking is per loop).
_POLL_INTERVAL = 0.05


class LocalLimiter:
    """Rate limits held in this object, shared by every client, event loop and thread using it.

    Each instance owns its budgets: two instances never share one. Clients
    created without a limiter of their own all use one process-wide instance,
    so two of them with the same app key draw from one budget. Clients
    configured with different rates for an action keep separate budgets (each
    honours its own); a block after a 416 holds them all. Waiters on one event
    loop are admitted first come, first served; a fresh window admits its whole
    budget at once.

    Args:
        clock: Monotonic seconds (never going back), read under the instance's
            thread lock by every event loop and thread that uses it. Replaceable
            in tests.
        poll_interval: The longest a waiter sleeps before it reads the clock and
            the budget again. A slot released in another event loop or thread
            cannot wake it, and neither can an injected clock that is moved.

    Raises:
        ConfigurationError: ``poll_interval`` is not positive.
    """

    __slots__ = ("_blocked_until", "_budgets", "_clock", "_lock", "_poll", "_waiters")

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = _POLL_INTERVAL,
    ) -> None:
        if not isinstance(poll_interval, int | float) or not poll_interval > 0:
            raise refuse("poll_interval", "a positive number of seconds", poll_interval)
        self._clock = clock
        self._poll = poll_interval
        # The budget is the app's, not one event loop's: a worker that runs each
        # task in its own loop (asyncio.run per job) must not start every job
        # afresh. So the windows and blocks sit behind a thread lock, and the
        # waiters' queues, which belong to one loop, in a RunVar.
        self._lock = threading.Lock()
        self._budgets: dict[_BudgetKey, _Budget] = {}
        self._blocked_until: dict[str, float] = {}
        self._waiters: RunVar[dict[_BudgetKey, _Waiters]] = RunVar("nim_async_local_waiters")

    def _budget(self, budget_key: _BudgetKey, limits: ActionLimits) -> _Budget:
        with self._lock:
            budget = self._budgets.get(budget_key)
            if budget is None:
                budget = self._budgets[budget_key] = _Budget(limits)
            return budget

    def _local_waiters(self, budget_key: _BudgetKey) -> _Waiters:
        try:
            waiters = self._waiters.get()
        except LookupError:
            waiters = {}
            self._waiters.set(waiters)
        queue = waiters.get(budget_key)
        if queue is None:
            queue = waiters[budget_key] = _Waiters()
        return queue

    @asynccontextmanager
    async def slot(self, key: str, limits: ActionLimits, *, hold: float) -> AsyncIterator[None]:
        """Wait for a free slot of every rate of ``key``; hold it while the body runs.

        Guarantees that, for each rate, the calls holding a slot at any moment
        (in flight, or answered less than ``per`` seconds ago on this limiter's
        clock) never exceed ``calls``, and that no slot is handed out before a
        block has passed. ``hold`` is not needed in one process: a slot is
        always given back when the body ends.
        """
        budget_key = (key, limits.rates)
        budget = self._budget(budget_key, limits)
        waiters = self._local_waiters(budget_key)
        async with waiters.queue:
            while True:
                with self._lock:
                    now = self._clock()
                    ready_at = max(self._blocked_until.get(key, -math.inf), budget.free_at(now))
                    if ready_at <= now:
                        budget.take()
                        break
                changed = waiters.changed
                with anyio.move_on_after(min(ready_at - now, self._poll)):
                    await changed.wait()
        try:
            yield
        finally:
            with self._lock:
                budget.release(self._clock())
            waiters.notify()

    async def block(self, key: str, limits: ActionLimits, seconds: float) -> None:
        """Admit no call for ``key``, whatever its rates, until ``seconds`` from now.

        A later block never shortens a longer one.
        """
        with self._lock:
            until = self._clock() + seconds
            if until > self._blocked_until.get(key, -math.inf):
                self._blocked_until[key] = until


_SHARED = LocalLimiter()


def shared_local_limiter() -> LocalLimiter:
    """Return the process-wide ``LocalLimiter`` that every client without its own limiter uses."""
    return _SHARED
