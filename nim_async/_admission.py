"""A bound on how many calls begin their work in one turn of the event loop.

Two thousand calls started at once (``asyncio.gather``, a task group, a burst
of web requests) would each check, encode and sign its request in the same
turn of the event loop, before any of them waits for anything: measured at
about 150 ms in which nothing else in the process runs, no timer, no other
request of a web service, no heartbeat. Here at most ``per_turn`` calls start
in a turn; the others wait for the next turns, first come, first served. The
work is the same; it is spread over turns, with the loop's timers and sockets
served in between.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["PER_TURN", "Admission"]

# Sixteen calls' checks, encoding and (first time) connecting take a few
# milliseconds: a turn stays short.
PER_TURN = 16


class Admission:
    """At most ``per_turn`` calls admitted per turn of the event loop, in arrival order.

    Waiting costs nothing when fewer arrive: the first call of a turn
    schedules one callback for the next turn, which counts afresh. A waiter
    cancelled before its turn is skipped when the turns reach it (constant
    time each); one cancelled after it was woken takes nothing, since
    admission hands out no resource to give back. Bound to one event loop
    and not thread-safe, like the client's pipeline that owns it.

    Args:
        per_turn: The most calls admitted in one turn.
    """

    __slots__ = ("_admitted", "_per_turn", "_scheduled", "_waiting")

    def __init__(self, per_turn: int = PER_TURN) -> None:
        self._per_turn = per_turn
        self._admitted = 0
        self._scheduled = False
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def admit(self) -> None:
        """Return in this turn if it has room and nobody waits; else in a later turn."""
        turn = self.enter()
        if turn is not None:
            await turn

    def enter(self) -> asyncio.Future[None] | None:
        """`admit` without a coroutine when the turn has room: None if admitted now,
        else the future to await, which is done in the turn that admits the caller."""
        if not self._scheduled:
            self._scheduled = True
            loop = asyncio.get_running_loop()
            loop.call_soon(self._next_turn, loop)
        if self._admitted < self._per_turn and not self._waiting:
            self._admitted += 1
            return None
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        return waiter

    def _next_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        admitted = 0
        while self._waiting and admitted < self._per_turn:
            waiter = self._waiting.popleft()
            if not waiter.done():  # else cancelled while it waited
                waiter.set_result(None)
                admitted += 1
        self._admitted = admitted
        if admitted or self._waiting:
            loop.call_soon(self._next_turn, loop)
        else:
            self._scheduled = False
