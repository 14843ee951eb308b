"""Client-side rate limits: ``Rate``, ``RateLimits``, the ``Limiter`` protocol, ``LocalLimiter``.

The server counts a call when it *arrives*, somewhere between our start and our
answer, and blocks the whole action for 10 s or 60 s after a breach (NetEase's
频率控制 (frequency control) page). Counting starts on our side is not enough: under load
arrivals drift. So a call holds its slot from the moment it starts until ``per``
seconds after its answer; then no server window, wherever it falls, can hold
more than ``calls`` arrivals, whatever the latency.

Waits are bounded and honest: the client puts each call's wait deadline in a
context variable (`bounded_wait`) around ``Limiter.slot``, and the limiters of
this package, knowing that the next slot frees later than that, raise
``SlotTimeout`` at once with the time it really is away, instead of waiting out
the deadline first.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

import anyio
import anyio.to_thread
import attrs
from anyio.lowlevel import RunVar

from . import _actions
from ._config import at_least, integer_at_least, refuse
from ._errors import LimiterUnavailable, SlotTimeout
from ._fifo import FifoLock
from ._limit_file import LimitFile

__all__ = [
    "ActionLimits",
    "Limiter",
    "LimiterStats",
    "LocalLimiter",
    "Rate",
    "RateLimits",
    "WaitBound",
    "bounded_wait",
    "current_wait_bound",
    "shared_local_limiter",
]

logger = logging.getLogger("nim_async")


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
    """Every rate one action must honour, and how long the server blocks it after a breach.

    Args:
        rates: The windows, all honoured at once (broadcastMsg: 10 a minute and 1000 a day).
        block: Seconds the server blocks the action after a breach (answering 416).
    """

    rates: tuple[Rate, ...]
    block: float = attrs.field(validator=at_least(0), converter=_seconds)

    def scaled(self, factor: float) -> ActionLimits:
        """Return these limits with every period and the block multiplied by ``factor``."""
        return ActionLimits(
            tuple(Rate(rate.calls, rate.per * factor) for rate in self.rates), self.block * factor
        )


# NetEase's 频率控制 (frequency control) page: 100/s with a 10 s block is the plan
# default for every action.
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
        job/nos/del: 5 calls/day, blocked a day. Sources: NetEase's "消息功能"
        page (the batch and broadcast rows), its 频率控制 (frequency control)
        page, and its default frequency-control table for the message functions
        (job/nos/del).
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


class WaitBound:
    """How long one call may still wait for its slot, and the earliest its slot frees.

    The deadline is on the event loop's clock (``anyio.current_time()``); a
    limiter measures the distance to the next free slot on its own clock, in
    seconds too.
    """

    __slots__ = ("deadline", "free_at")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        # When a slot may free at the earliest, on the loop's clock, as last seen.
        self.free_at: float | None = None

    def refuse_beyond(self, distance: float) -> None:
        """Note that no slot frees within ``distance`` s; fail if that is past the deadline.

        Args:
            distance: Seconds until a slot may free: exact, or a lower bound.

        Raises:
            SlotTimeout: The slot frees after the deadline; ``retry_after`` is ``distance``.
        """
        self.free_at = anyio.current_time() + distance
        if self.free_at > self.deadline:
            raise SlotTimeout(
                f"no rate-limit slot frees within {distance:.3g} s; it was not sent",
                retry_after=distance,
            )

    def retry_after(self) -> float | None:
        """Seconds until a slot may free as last seen by the limiter, or None if it never said."""
        return None if self.free_at is None else max(0.0, self.free_at - anyio.current_time())


_WAIT_BOUND: ContextVar[WaitBound | None] = ContextVar("nim_async_wait_bound", default=None)


def current_wait_bound() -> WaitBound | None:
    """The wait bound of the call asking for a slot in this context, if it has one."""
    return _WAIT_BOUND.get()


@contextmanager
def bounded_wait(deadline: float) -> Iterator[WaitBound | None]:
    """Within the block, limiters refuse at once a slot that frees after ``deadline``.

    Args:
        deadline: On the event loop's clock; ``math.inf`` for no bound (yields None).
    """
    bound = None if deadline == math.inf else WaitBound(deadline)
    token = _WAIT_BOUND.set(bound)
    try:
        yield bound
    finally:
        _WAIT_BOUND.reset(token)


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
        """Return when a slot may be free: ``now``, or the earliest later time.

        Exact when a finished slot frees first; when only a call in flight can
        free one, ``now + per`` (its window ends ``per`` after its answer, which
        has not come yet).
        """
        while self.ends and self.ends[0] <= now:
            self.ends.popleft()
        excess = self.in_flight + len(self.ends) - self.calls
        if excess < 0:
            return now
        return self.ends[excess] if excess < len(self.ends) else now + self.per

    def nth_free_at(self, now: float, ahead: int) -> float:
        """The earliest a caller with ``ahead`` callers queued before it can have a slot.

        A lower bound: each slot frees ``per`` after its answer, so the slot
        that frees at ``t`` frees again no sooner than ``t + per``; a slot in
        flight frees no sooner than ``now + per``.
        """
        self.free_at(now)  # drops the ends that passed
        held = sorted([*self.ends, *([now + self.per] * self.in_flight)])
        frees = [now] * max(self.calls - len(held), 0) + held
        if len(frees) > self.calls:
            frees = frees[len(frees) - self.calls :]
        return frees[ahead % self.calls] + (ahead // self.calls) * self.per


class _Budget:
    """The windows of one key and one shape of rates."""

    __slots__ = ("windows",)

    def __init__(self, limits: ActionLimits) -> None:
        self.windows = [_Window(rate) for rate in limits.rates]

    def free_at(self, now: float) -> float:
        """Return when every window may have a free slot: ``now``, or the earliest later time."""
        return max(window.free_at(now) for window in self.windows)

    def nth_free_at(self, now: float, ahead: int) -> float:
        """The earliest every window can have a slot for a caller behind ``ahead`` others."""
        return max(window.nth_free_at(now, ahead) for window in self.windows)

    def take(self) -> None:
        for window in self.windows:
            window.in_flight += 1

    def release(self, now: float) -> None:
        for window in self.windows:
            window.in_flight -= 1
            window.ends.append(now + window.per)

    def note_past(self, now: float, ages: Sequence[float]) -> None:
        """Record finished calls answered ``ages`` seconds before ``now``."""
        for window in self.windows:
            for age in ages:
                end = now + window.per - max(age, 0.0)
                if end > now:  # else it counts in this window no more (NaN neither)
                    bisect.insort(window.ends, end)


class _Waiters:
    """Per event loop: the FIFO queue of one budget's waiters, and their wake-up call."""

    __slots__ = ("changed", "free_at", "queue")

    def __init__(self) -> None:
        # First come, first served; a cancelled waiter leaves in O(1), so a
        # queue of tens of thousands can be given up at once.
        self.queue = FifoLock()
        self.changed = anyio.Event()
        # With a file: the earliest a slot may free (loop clock), as the waiter
        # at the front last read it; the ones queued behind are no nearer.
        self.free_at = -math.inf

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


_BudgetKey = tuple[str, tuple[Rate, ...]]

# A waiter looks at the budget again at least this often: a slot released in
# another event loop or thread cannot wake it (waking is per loop).
_POLL_INTERVAL = 0.05


class LocalLimiter:
    """Rate limits held in this object, or in a file every process on the host shares.

    Each instance owns its budgets: two instances never share one, unless
    they are given the same ``path``. Clients created without a limiter of
    their own all use one process-wide instance, so two of them with the same
    app key draw from one budget. Clients configured with different rates for
    an action keep separate budgets in memory (each honours its own); a block
    after a 416 holds them all. Waiters on one event loop are admitted first
    come, first served; a fresh window admits its whole budget at once.

    With ``path``, the windows and blocks live in an SQLite file: every process
    that opens the same file (uvicorn or gunicorn workers, a cron job) draws
    from one budget per app key and action, each honouring its own rates over
    the calls of all, and a process started again inside a window sees the
    calls of the last minute and the last day. A call in flight in a process
    that dies holds its slot until its start plus the request's timeout plus
    ``per``, never for ever. Waiters look at the file every ``poll_interval``
    (another process cannot wake them). The file is for one host: SQLite's
    locking is unreliable over network file systems (NFS, SMB), so processes on
    several hosts share a budget through ``RedisLimiter`` instead.

    Args:
        path: An SQLite file to hold the budget (created if missing); None
            keeps it in this object. The file is opened at the first call.
        clock: Seconds, never going back, read under the instance's thread lock
            by every event loop and thread that uses it. Replaceable in tests.
            Default: ``time.monotonic`` in memory, ``time.time`` with a ``path``
            (the clock every process on the host shares).
        poll_interval: The longest a waiter sleeps before it reads the clock and
            the budget again. A slot released in another event loop, thread or
            process cannot wake it, and neither can an injected clock that is moved.

    Raises:
        ConfigurationError: ``poll_interval`` is not positive; ``path`` is not
            a str or path, or is ``""`` or ``":memory:"`` (a budget of one process).
    """

    __slots__ = ("_blocked_until", "_budgets", "_clock", "_file", "_lock", "_poll", "_waiters")

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] | None = None,
        poll_interval: float = _POLL_INTERVAL,
    ) -> None:
        if not isinstance(poll_interval, int | float) or not poll_interval > 0:
            raise refuse("poll_interval", "a positive number of seconds", poll_interval)
        self._file = None if path is None else LimitFile(path, clock=clock or time.time)
        self._clock = clock or time.monotonic
        self._poll = poll_interval
        # The budget is the app's, not one event loop's: a worker that runs each
        # task in its own loop (asyncio.run per job) must not start every job
        # afresh. So the windows and blocks sit behind a thread lock, and the
        # waiters' queues, which belong to one loop, in a RunVar.
        self._lock = threading.Lock()
        self._budgets: dict[_BudgetKey, _Budget] = {}
        self._blocked_until: dict[str, float] = {}
        self._waiters: RunVar[dict[_BudgetKey, _Waiters]] = RunVar("nim_async_local_waiters")

    def __repr__(self) -> str:
        return "LocalLimiter()" if self._file is None else f"LocalLimiter(path={self._file.path!r})"

    @property
    def path(self) -> str | None:
        """The absolute path of the file holding the budget, or None (held in memory)."""
        return None if self._file is None else self._file.path

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
        block has passed; with a ``path``, across every process using the file.
        ``hold`` is the longest the body can run: in memory a slot is always
        given back when the body ends; in a file it frees the slot of a process
        that died holding it.

        Raises:
            SlotTimeout: The client bounded the wait (``max_wait``) and the next
                slot frees later than that; raised at once, with the time the
                slot is away (a lower bound while the call holding it is in flight).
            LimiterUnavailable: The file cannot be opened, read or written;
                nothing was sent.
        """
        if self._file is not None:
            async with self._file_slot(self._file, key, limits, hold):
                yield
            return
        budget_key = (key, limits.rates)
        budget = self._budget(budget_key, limits)
        waiters = self._local_waiters(budget_key)
        if waiters.queue.locked():
            # Behind waiters served first, this one's slot comes after theirs:
            # refused at once, with that distance, when it is beyond the bound.
            bound = _WAIT_BOUND.get()
            if bound is not None:
                ahead = waiters.queue.waiting + 1
                with self._lock:
                    now = self._clock()
                    ready_at = max(
                        self._blocked_until.get(key, -math.inf), budget.nth_free_at(now, ahead)
                    )
                if ready_at > now:
                    bound.refuse_beyond(ready_at - now)
        async with waiters.queue:
            while True:
                with self._lock:
                    now = self._clock()
                    ready_at = max(self._blocked_until.get(key, -math.inf), budget.free_at(now))
                    if ready_at <= now:
                        budget.take()
                        break
                bound = _WAIT_BOUND.get()
                if bound is not None:
                    bound.refuse_beyond(ready_at - now)
                changed = waiters.changed
                with anyio.move_on_after(min(ready_at - now, self._poll)):
                    await changed.wait()
        try:
            yield
        finally:
            with self._lock:
                budget.release(self._clock())
            waiters.notify()

    @asynccontextmanager
    async def _file_slot(
        self, file: LimitFile, key: str, limits: ActionLimits, hold: float
    ) -> AsyncIterator[None]:
        rates = tuple((rate.calls, rate.per) for rate in limits.rates)
        waiters = self._local_waiters((key, limits.rates))
        bound = _WAIT_BOUND.get()
        if bound is not None and waiters.queue.locked():
            # Behind waiters served first, this one's slot is no nearer than
            # theirs (as the front one last read the file: no file access here).
            ahead = waiters.free_at - anyio.current_time()
            if ahead > 0:
                bound.refuse_beyond(ahead)
        slot: int | None = None
        try:
            async with waiters.queue:
                while True:
                    # Off the event loop: another process may hold the file's lock.
                    slot, wait = await anyio.to_thread.run_sync(file.take, key, rates, hold)
                    if slot is not None:
                        break
                    waiters.free_at = anyio.current_time() + wait
                    if bound is not None:
                        bound.refuse_beyond(wait)
                    changed = waiters.changed
                    with anyio.move_on_after(min(wait, self._poll)):
                        await changed.wait()
            yield
        finally:
            if slot is not None:
                await self._give_back(file, key, slot, max(per for _, per in rates))
                waiters.notify()

    async def _give_back(self, file: LimitFile, key: str, slot: int, span: float) -> None:
        # Shielded: a release lost to a cancel would hold the slot until its
        # provisional end (start + hold + per).
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(file.release, slot, span)
            except LimiterUnavailable as exc:
                logger.warning(
                    "could not release a rate-limit slot of %s in %s (%s): it counts until "
                    "its start + hold + per",
                    key,
                    file.path,
                    exc,
                )

    async def block(self, key: str, limits: ActionLimits, seconds: float) -> None:
        """Admit no call for ``key``, whatever its rates, until ``seconds`` from now.

        A later block never shortens a longer one. With a ``path``, the block
        holds every process using the file.

        Raises:
            LimiterUnavailable: The file cannot be written.
        """
        if self._file is not None:
            await anyio.to_thread.run_sync(self._file.block, key, seconds)
            return
        with self._lock:
            until = self._clock() + seconds
            if until > self._blocked_until.get(key, -math.inf):
                self._blocked_until[key] = until

    def note_past_calls(self, key: str, limits: ActionLimits, ages: Sequence[float]) -> None:
        """Count calls an earlier process made and had answered ``ages`` seconds ago.

        A process that resumes a job after a restart tells the limiter what
        the budget already spent: each call holds a slot of every rate of
        ``key`` until ``per - age`` seconds from now. Ages of ``per`` or more
        count in that window no more. With a ``path`` this does nothing: the
        file holds those calls already.

        Args:
            key: The budget: the app key and the action, as for `slot`.
            limits: The rates the calls count against.
            ages: Seconds since each call was answered.
        """
        if self._file is not None:
            return
        budget = self._budget((key, limits.rates), limits)
        with self._lock:
            budget.note_past(self._clock(), ages)


_SHARED = LocalLimiter()


def shared_local_limiter() -> LocalLimiter:
    """Return the process-wide ``LocalLimiter`` that every client without its own limiter uses."""
    return _SHARED
