"""The service's frequency control: a strict sliding-window log per action, and blocks.

NetEase's frequency control (频率控制) notes: a breach answers 416 and blocks
the action for a while (10 s after 100/s; 60 s for the batch actions and
broadcastMsg). Nobody
publishes whether the service counts in fixed or sliding windows, so the
emulator takes the strictest reading: a call is refused if **any** window of
``per`` seconds ending at its arrival already holds ``calls`` counted arrivals.

The limits come from a duck-typed object: ``rate_limits.for_action(action)``
returns ``None`` (no limit) or an object with ``rates`` (each with ``calls`` and
``per`` seconds) and ``block`` (seconds, or ``None`` for no block beyond the
refused call); the client's ``RateLimits`` fits.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import attrs

__all__ = ["FrequencyControl"]


@attrs.define
class _Window:
    calls: int
    per: float
    arrivals: deque[float] = attrs.field(factory=deque)

    def full(self, now: float) -> bool:
        # Arrivals in (now - per, now] share a window with this one.
        while self.arrivals and self.arrivals[0] <= now - self.per:
            self.arrivals.popleft()
        return len(self.arrivals) >= self.calls


@attrs.define
class _ActionState:
    windows: list[_Window]
    block: float
    blocked_until: float = float("-inf")


class FrequencyControl:
    """Admits or refuses arrivals per action; not thread-safe (the emulator locks)."""

    def __init__(
        self, rate_limits: object | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Create the control.

        Args:
            rate_limits: An object with ``for_action(action)``, or ``None`` for no limits.
            clock: Monotonic seconds; replaceable in tests.

        Raises:
            TypeError: ``rate_limits`` has no ``for_action`` method.
        """
        if rate_limits is not None and not callable(getattr(rate_limits, "for_action", None)):
            raise TypeError("rate_limits must have a for_action(action) method")
        self._rate_limits = rate_limits
        self._clock = clock
        self._actions: dict[str, _ActionState | None] = {}

    def _state(self, action: str) -> _ActionState | None:
        if action not in self._actions:
            self._actions[action] = self._load(action)
        return self._actions[action]

    def _load(self, action: str) -> _ActionState | None:
        if self._rate_limits is None:
            return None
        limits = self._rate_limits.for_action(action)  # type: ignore[attr-defined]
        if limits is None:
            return None
        windows = [_Window(int(rate.calls), float(rate.per)) for rate in limits.rates]
        if not windows:
            return None
        return _ActionState(windows, float(limits.block or 0.0))

    def admit(self, action: str) -> bool:
        """Count an arrival of ``action`` now, or refuse it.

        A refused arrival is not counted. The arrival that finds a window full
        starts a block of ``block`` seconds, during which every arrival is refused.

        Returns:
            ``True`` if the call may proceed; ``False`` if it must answer 416.
        """
        state = self._state(action)
        if state is None:
            return True
        now = self._clock()
        if now < state.blocked_until:
            return False
        # Check every window before counting in any: a refused call counts nowhere.
        if any(window.full(now) for window in state.windows):
            state.blocked_until = now + state.block
            return False
        for window in state.windows:
            window.arrivals.append(now)
        return True
