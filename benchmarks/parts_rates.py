"""The rate-limit parts of benchmarks/run_all.py: nim_async's limiters and what users write instead.

Definitions and settings: the docstring of run_all.py and bench_common.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
from bench_common import (
    APP_KEY,
    APP_SECRET,
    BASE_URL,
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
    signed_headers,
)

# --- rate limits: nim_async --------------------------------------------------------------


async def _nim_burst(count: int, limits: Any, latency: float = 0.0) -> dict[str, Any]:
    import nim_async as nim
    from nim_async.testing import NimEmulator

    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=limits)
    if latency:
        emulator.set_latency(latency)
    calls: list[tuple[float, float, bool]] = []

    async def call(client: nim.NimClient, number: int) -> None:
        start = time.perf_counter()
        ok = True
        try:
            await client.send_attach_msg("alice", f"user{number}", {"n": number})
        except nim.NimError:
            ok = False
        calls.append((start, time.perf_counter(), ok))

    async with (
        nim.NimClient(
            APP_KEY,
            APP_SECRET,
            base_url=BASE_URL,
            transport=emulator.transport(),
            rate_limits=limits,
            limiter=nim.LocalLimiter(),
        ) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(count):
            group.start_soon(call, client, number)
    (rate, *_) = limits.for_action("msg/sendAttachMsg").rates
    return rate_result(calls, emulator.rate_limited, rate.calls, rate.per)


async def part_local() -> dict[str, Any]:
    import nim_async as nim

    limits = nim.RateLimits.default().scaled(WINDOW)
    await _nim_burst(WARM_UP_CALLS, limits)
    return await _nim_burst(BURST_CALLS, limits)


async def part_real_local() -> dict[str, Any]:
    import nim_async as nim

    limits = nim.RateLimits.default()
    await _nim_burst(WARM_UP_CALLS, limits.scaled(0.01))
    return await _nim_burst(REAL_CALLS, limits, REAL_LATENCY)


# --- rate limits: RedisLimiter in worker processes -----------------------------------------


async def redis_worker(base_url: str, redis_url: str, calls: int, name: str) -> None:
    """One process: ``bench_limits.burst_on_go``, then print its calls as JSON."""
    import bench_limits

    import nim_async as nim

    limiter = nim.RedisLimiter(redis_url, prefix="bench")
    async with nim.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url=base_url,
        rate_limits=nim.RateLimits.default().scaled(WINDOW),
        limiter=limiter,
        max_connections=200,
    ) as client:
        results = await bench_limits.burst_on_go(client, calls, name)
    await limiter.aclose()
    print(json.dumps(results))


def part_redis() -> dict[str, Any] | None:
    import bench_limits

    import nim_async as nim
    from nim_async.testing import NimEmulator

    binary = shutil.which("redis-server")
    if binary is None:
        return None
    limits = nim.RateLimits.default().scaled(WINDOW)
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=limits)
    per_process = BURST_CALLS // PROCESSES
    with bench_limits.redis_server(binary) as redis_url, emulator.serve() as base_url:
        command = [sys.executable, __file__, "--redis-worker", base_url, redis_url]
        outputs = bench_limits.run_workers(command, PROCESSES, per_process)
    calls = [tuple(row) for output in outputs for row in json.loads(output)]
    return rate_result(calls, emulator.rate_limited, LIMIT, WINDOW)  # type: ignore[arg-type]


# --- rate limits: raw httpx ----------------------------------------------------------------


async def _raw_burst(
    count: int, limits: Any, limiter_factory: Callable[[], Any] | None, latency: float = 0.0
) -> dict[str, Any]:
    """``count`` signed sendAttachMsg posts at once; a 416 waits out the block and retries."""
    from nim_async.testing import NimEmulator

    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=limits)
    if latency:
        emulator.set_latency(latency)
    action = limits.for_action("msg/sendAttachMsg")
    (rate, *_) = action.rates
    block = float(action.block)
    limiter = limiter_factory() if limiter_factory else None
    calls: list[tuple[float, float, bool]] = []

    async def call(http: httpx.AsyncClient, number: int) -> None:
        start = time.perf_counter()
        ok = False
        form = {"from": "alice", "msgtype": "0", "to": f"user{number}", "attach": '{"n":1}'}
        for _ in range(MAX_ATTEMPTS):
            if limiter is not None:
                await limiter.acquire()
            response = await http.post(
                "msg/sendAttachMsg.action",
                content=urlencode(form).encode(),
                headers=signed_headers(APP_KEY, APP_SECRET),
            )
            code = response.json()["code"]
            if code == 416:
                await asyncio.sleep(block)
                continue
            ok = code == 200
            break
        calls.append((start, time.perf_counter(), ok))

    async with httpx.AsyncClient(base_url=BASE_URL, transport=emulator.transport()) as http:
        with anyio.move_on_after(RAW_DEADLINE):
            async with anyio.create_task_group() as group:
                for number in range(count):
                    group.start_soon(call, http, number)
    result = rate_result(calls, emulator.rate_limited, rate.calls, rate.per)
    result["calls"] = count  # calls cut off by the deadline are not completed
    return result


def _aiolimiter(calls: float, period: float) -> Callable[[], Any]:
    def make() -> Any:
        from aiolimiter import AsyncLimiter

        return AsyncLimiter(calls, period)

    return make


async def _raw_part(limiter_factory: Callable[[], Any] | None) -> dict[str, Any]:
    import nim_async as nim

    limits = nim.RateLimits.default().scaled(WINDOW)
    return await _raw_burst(BURST_CALLS, limits, limiter_factory)


async def part_aio_burst() -> dict[str, Any]:
    return await _raw_part(_aiolimiter(LIMIT, WINDOW))


async def part_aio_pace() -> dict[str, Any]:
    return await _raw_part(_aiolimiter(1, WINDOW / LIMIT))


async def part_retry() -> dict[str, Any]:
    return await _raw_part(None)


async def part_real_aio() -> dict[str, Any]:
    import nim_async as nim

    return await _raw_burst(REAL_CALLS, nim.RateLimits.default(), _aiolimiter(100, 1), REAL_LATENCY)


def part_redis_far() -> dict[str, Any] | None:
    import bench_redis_far as far

    measured = far.run()
    if measured is None:
        return None
    return rate_result(measured["calls"], measured["rate_limited"], far.CALLS_PER_SECOND, 1.0)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--redis-worker":
        base_url, redis_url, calls, name = sys.argv[2:6]
        anyio.run(redis_worker, base_url, redis_url, int(calls), name)
