"""The cancellation part of benchmarks/run_all.py: how long giving up a queue of waiters takes.

A service that gives up on a burst (a shutdown, a request whose caller left)
cancels every call still queued for a rate-limit slot at once. For each size in
``QUEUED``, in a fresh event loop: a ``LocalLimiter`` budget of one call per
hour has its slot taken and held, that many tasks queue for the next slot, the
task group holding them is cancelled, and the time until every one has left is
measured. Afterwards the held slot is given back and the run checks that no
cancelled waiter ever got a slot.

The queue measured is the limiter's own, through its ``slot`` API: a call made
through ``NimClient`` adds the pipeline's own cost per cancelled call, which
grows linearly too. ``floor_seconds`` is the same number of tasks in
``anyio.sleep_forever()``, cancelled the same way: what the event loop alone
costs, for reading the figures on a slow or busy machine.

Run by ``benchmarks/run_all.py`` (part ``cancel``), or alone:
``python benchmarks/parts_cancel.py`` prints the result as JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc

QUEUED = (10_000, 20_000, 40_000)
WARM_UP_QUEUED = 1_000
KEY = "bench-app-key:msg/sendAttachMsg"


async def _time_cancel(queued: int, wait: Callable[[], Coroutine[Any, Any, None]]) -> float:
    """Start ``queued`` tasks running ``wait``; return the seconds cancelling them all took."""
    async with anyio.create_task_group() as group:
        for _ in range(queued):
            group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        started = time.perf_counter()
        group.cancel_scope.cancel()
    return time.perf_counter() - started


async def _cancel_queued(queued: int) -> float:
    """Queue ``queued`` waiters behind a held slot; return the seconds cancelling them took."""
    import nim_async as nim

    limiter = nim.LocalLimiter()
    # One call per hour: the held slot keeps every waiter queued.
    limits = nim.ActionLimits((nim.Rate(1, 3600),), block=10)
    give_back = anyio.Event()
    admitted = 0

    async def holder(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with limiter.slot(KEY, limits, hold=10):
            task_status.started()
            await give_back.wait()

    async def waiter() -> None:
        nonlocal admitted
        async with limiter.slot(KEY, limits, hold=10):
            admitted += 1

    async with anyio.create_task_group() as outer:
        await outer.start(holder)
        took = await _time_cancel(queued, waiter)
        give_back.set()
    if admitted:
        raise AssertionError(f"{admitted} cancelled waiters got a slot")
    return took


async def _cancel_bare(queued: int) -> float:
    """The same number of tasks sleeping for ever, each on its own, cancelled the same way."""
    return await _time_cancel(queued, anyio.sleep_forever)


def part_cancel() -> dict[str, Any]:
    """Seconds to cancel every waiter queued for a slot, per queue size, each in a fresh loop."""
    anyio.run(_cancel_queued, WARM_UP_QUEUED)
    return {
        "seconds": {str(queued): anyio.run(_cancel_queued, queued) for queued in QUEUED},
        "floor_seconds": {str(queued): anyio.run(_cancel_bare, queued) for queued in QUEUED},
    }


if __name__ == "__main__":
    print(json.dumps(part_cancel()))
