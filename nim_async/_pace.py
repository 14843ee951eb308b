"""How long the rest of a bulk send takes: the budget's windows and the job's own calls.

A rate of ``calls`` per ``per`` seconds holds a slot from a call's start until
``per`` seconds after its answer (the rule the limiters keep). So, once the
free slots are spent, the next call starts when the oldest slot frees, and
call ``j`` of the rest starts where call ``j - calls`` freed its slot:
``start(j) = start(j mod calls) + (j // calls) * (answer time + per)``.
That is what a job waiting on its budget really does, in bursts; a rate
measured over the last calls is not (it promises the end of a minute-long
wait within a second).

Only the job's own calls are known here: another process spending the same
budget makes the real time longer.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import attrs

__all__ = ["CallLog", "Pace"]

# The answer time assumed before the job has seen one.
_FIRST_GUESS = 0.05
# How much each new answer time moves the estimate (an exponential average).
_WEIGHT = 0.2


@attrs.frozen
class Pace:
    """What bounds a bulk send's speed.

    Attributes:
        rates: ``(calls, per)`` of each window of the batch action; empty without limits.
        chunk_size: Recipients per call.
        concurrency: Calls in flight at once.
    """

    rates: tuple[tuple[int, float], ...]
    chunk_size: int
    concurrency: int


class CallLog:
    """The job's recent calls (start, answer) on the wall clock, and their answer time."""

    __slots__ = ("_calls", "_open", "answer_time")

    def __init__(self, keep: int) -> None:
        # [start, answered or None], oldest first: as many as the widest window holds.
        self._calls: deque[list[float | None]] = deque(maxlen=max(keep, 1))
        self._open: dict[int, list[float | None]] = {}
        self.answer_time = _FIRST_GUESS

    def started(self, index: int, at: float) -> None:
        """Chunk ``index``'s request went out at ``at`` (a retry replaces the attempt)."""
        entry = self._open.get(index)
        if entry is None:
            entry = self._open[index] = [at, None]
            self._calls.append(entry)
        entry[0] = at

    def past(self, at: float, answered: float) -> None:
        """A call an earlier run made (from its journal): it holds its slots, it was not timed."""
        self._calls.append([at, answered])

    def answered(self, index: int, at: float) -> None:
        """Chunk ``index``'s answer came at ``at`` (or it ended without one)."""
        entry = self._open.pop(index, None)
        if entry is None:
            return
        start = entry[0]
        assert start is not None
        entry[1] = at
        self.answer_time += _WEIGHT * (max(at - start, 0.0) - self.answer_time)

    @property
    def in_flight(self) -> int:
        """Calls started and not answered."""
        return len(self._open)

    def seconds_left(self, pace: Pace, recipients: int, now: float) -> float:
        """Seconds until ``recipients`` more (those in flight included) are answered."""
        if recipients <= 0:
            return 0.0
        answer = self.answer_time
        calls = max(math.ceil(recipients / pace.chunk_size) - self.in_flight, 0)
        if calls == 0:
            return answer if self.in_flight else 0.0
        # The concurrency alone: the calls go in waves of `concurrency`.
        ends = [now + math.ceil((calls + self.in_flight) / pace.concurrency) * answer]
        for allowed, per in pace.rates:
            frees = self._frees(allowed, per, answer, now)
            last = calls - 1
            start = max(now, frees[last % allowed]) + (last // allowed) * (answer + per)
            ends.append(start + answer)
        return max(max(ends) - now, 0.0)

    def _frees(self, allowed: int, per: float, answer: float, now: float) -> Sequence[float]:
        """When each of a rate's ``allowed`` slots is free, earliest first."""
        held = []
        for start, answered in self._calls:
            assert start is not None
            end = (max(start + answer, now) if answered is None else answered) + per
            if end > now:
                held.append(end)
        held.sort()
        frees = [now] * max(allowed - len(held), 0) + held
        return frees[-allowed:] if len(frees) > allowed else frees
