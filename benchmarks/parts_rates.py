"""The rate-limit parts of benchmarks/run_all.py: nim_async's limiters and what users write instead.

Every part sends to the emulator served by uvicorn in another process
(bench_servers.py ``emulator``), which checks the budget itself and counts the
calls it answers 416. Each client first makes ``WARM_UP_CALLS`` calls at once
(under the budget), then waits until their window has passed, at the client
and at the server, before the measured burst. Definitions: the docstring of
run_all.py; settings: bench_common.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_clients import Send, client, nim_async
from bench_common import (
    BURST_CALLS,
    LIMIT,
    MAX_ATTEMPTS,
    PROCESSES,
    RAW_DEADLINE,
    REAL_CALLS,
    REAL_LATENCY,
    WARM_UP_CALLS,
    WINDOW,
    rate_result,
)
from bench_servers import serving

Call = tuple[float, float, bool]  # (start, answer, completed), perf_counter seconds
# Past the warm-up's window: a slot frees ``per`` after its answer.
_WINDOW_MARGIN = 0.2


def _limits(scale: float) -> Any:
    import nim_async as nim

    return nim.RateLimits.default().scaled(scale)


async def _burst(count: int, call: Callable[[int], Awaitable[bool]], into: list[Call]) -> None:
    """Start ``count`` calls at once; append each one's (start, answer, completed) as it ends,
    so that a run cut off keeps the calls that finished."""

    async def timed(number: int) -> None:
        start = time.perf_counter()
        ok = await call(number)
        into.append((start, time.perf_counter(), ok))

    async with anyio.create_task_group() as group:
        for number in range(count):
            group.start_soon(timed, number)


def _summary(
    calls: list[Call], counts: dict[str, Any], scale: float, latency: float, count: int
) -> dict[str, Any]:
    (rate, *_) = _limits(scale).for_action("msg/sendAttachMsg").rates
    result = rate_result(calls, counts["rate_limited"], rate.calls, rate.per, latency)
    result["calls"] = count  # calls cut off by a deadline are not completed
    return result


# --- rate limits: nim_async --------------------------------------------------------------


async def _nim_run(base_url: str, count: int, scale: float) -> list[Call]:
    """``count`` sendAttachMsg at once through one client with a ``LocalLimiter`` of its own."""
    import nim_async as nim

    limits = _limits(scale)
    (rate, *_) = limits.for_action("msg/sendAttachMsg").rates
    async with nim_async(base_url, rate_limits=limits, limiter=nim.LocalLimiter()) as send:

        async def call(number: int) -> bool:
            try:
                await send(number)
            except nim.NimError:
                return False
            return True

        await _burst(WARM_UP_CALLS, call, [])
        await anyio.sleep(rate.per + _WINDOW_MARGIN)
        calls: list[Call] = []
        await _burst(count, call, calls)
    return calls


def _nim_part(count: int, scale: float, latency: float) -> dict[str, Any]:
    with serving("emulator", scale, latency) as server:
        calls = anyio.run(_nim_run, server.url, count, scale)
    return _summary(calls, server.counts, scale, latency, count)


def part_local() -> dict[str, Any]:
    return _nim_part(BURST_CALLS, WINDOW, 0.0)


def part_real_local() -> dict[str, Any]:
    return _nim_part(REAL_CALLS, 1.0, REAL_LATENCY)


# --- rate limits: raw clients --------------------------------------------------------------


def _aiolimiter(calls: float, period: float) -> Callable[[], Any]:
    def make() -> Any:
        from aiolimiter import AsyncLimiter

        return AsyncLimiter(calls, period)

    return make


async def _raw_run(
    name: str,
    base_url: str,
    count: int,
    scale: float,
    limiter_factory: Callable[[], Any] | None,
) -> list[Call]:
    """``count`` signed sendAttachMsg at once; a 416 waits out the block and retries.

    Cut off after ``RAW_DEADLINE`` seconds: the calls still going are not completed.
    """
    block = float(_limits(scale).for_action("msg/sendAttachMsg").block)
    (rate, *_) = _limits(scale).for_action("msg/sendAttachMsg").rates
    limiter: Any = None

    async def call_with(send: Send, number: int) -> bool:
        for _ in range(MAX_ATTEMPTS):
            if limiter is not None:
                await limiter.acquire()
            code = await send(number)
            if code != 416:
                return code == 200
            await asyncio.sleep(block)
        return False

    async with client(name, base_url) as send:

        async def call(number: int) -> bool:
            return await call_with(send, number)

        await _burst(WARM_UP_CALLS, call, [])
        await anyio.sleep(rate.per + _WINDOW_MARGIN)
        limiter = limiter_factory() if limiter_factory else None
        calls: list[Call] = []
        with anyio.move_on_after(RAW_DEADLINE):
            await _burst(count, call, calls)
    return calls


def _raw_part(
    name: str,
    count: int,
    scale: float,
    latency: float,
    limiter_factory: Callable[[], Any] | None,
) -> dict[str, Any]:
    with serving("emulator", scale, latency) as server:
        calls = anyio.run(_raw_run, name, server.url, count, scale, limiter_factory)
    return _summary(calls, server.counts, scale, latency, count)


def part_aio_burst() -> dict[str, Any]:
    return _raw_part("httpx", BURST_CALLS, WINDOW, 0.0, _aiolimiter(LIMIT, WINDOW))


def part_aio_pace() -> dict[str, Any]:
    return _raw_part("httpx", BURST_CALLS, WINDOW, 0.0, _aiolimiter(1, WINDOW / LIMIT))


def part_retry() -> dict[str, Any]:
    return _raw_part("httpx", BURST_CALLS, WINDOW, 0.0, None)


def part_real_httpx() -> dict[str, Any]:
    return _raw_part("httpx", REAL_CALLS, 1.0, REAL_LATENCY, _aiolimiter(LIMIT, 1))


def part_real_aiohttp() -> dict[str, Any]:
    return _raw_part("aiohttp", REAL_CALLS, 1.0, REAL_LATENCY, _aiolimiter(LIMIT, 1))


# --- rate limits: RedisLimiter in worker processes -----------------------------------------


async def redis_worker(base_url: str, redis_url: str, calls: int, name: str) -> None:
    """One process: ``bench_limits.burst_on_go``, then print its calls as JSON."""
    import bench_limits

    import nim_async as nim

    limiter = nim.RedisLimiter(redis_url, prefix="bench")
    async with nim.NimClient(
        "bench-app-key",
        "bench-app-secret",
        base_url=base_url,
        rate_limits=_limits(WINDOW),
        limiter=limiter,
    ) as client:
        results = await bench_limits.burst_on_go(client, calls, name)
    await limiter.aclose()
    print(json.dumps(results))


def part_redis() -> dict[str, Any] | None:
    import bench_limits

    binary = shutil.which("redis-server")
    if binary is None:
        return None
    per_process = BURST_CALLS // PROCESSES
    with (
        bench_limits.redis_server(binary) as redis_url,
        serving("emulator", WINDOW, 0.0) as server,
    ):
        command = [sys.executable, __file__, "--redis-worker", server.url, redis_url]
        outputs = bench_limits.run_workers(command, PROCESSES, per_process)
    calls: list[Call] = [
        (start, end, ok) for output in outputs for start, end, ok in json.loads(output)
    ]
    return rate_result(calls, server.counts["rate_limited"], LIMIT, WINDOW, 0.0)


def part_redis_far() -> dict[str, Any] | None:
    import bench_redis_far as far

    measured = far.run()
    if measured is None:
        return None
    return rate_result(
        measured["calls"], measured["rate_limited"], far.CALLS_PER_SECOND, 1.0, far.LATENCY
    )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--redis-worker":
        base_url, redis_url, calls, name = sys.argv[2:6]
        anyio.run(redis_worker, base_url, redis_url, int(calls), name)
