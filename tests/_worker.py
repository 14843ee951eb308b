"""One worker process of the multi-process test: sends through a shared RedisLimiter.

Usage: python -m tests._worker BASE_URL REDIS_URL CALLS SCALE WORKER

The rate limits are ``RateLimits.default().scaled(SCALE)``. The worker prints
``ready`` once it is connected, starts its CALLS sendAttachMsg calls (to
``WORKER-0``, ``WORKER-1``, ...) all at once when a line arrives on stdin, and
then prints how many succeeded.
"""

from __future__ import annotations

import sys

import anyio
import anyio.to_thread

import nim_async as nim


async def main(base_url: str, redis_url: str, calls: int, scale: float, worker: str) -> None:
    limiter = nim.RedisLimiter(redis_url, prefix="multi")
    succeeded = 0

    async def send(number: int) -> None:
        nonlocal succeeded
        await client.send_attach_msg("alice", f"{worker}-{number}", "x")
        succeeded += 1

    async with nim.NimClient(
        "test-app-key",
        "test-app-secret-do-not-leak",
        base_url=base_url,
        rate_limits=nim.RateLimits.default().scaled(scale),
        limiter=limiter,
        max_connections=200,
    ) as client:
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        async with anyio.create_task_group() as group:
            for number in range(calls):
                group.start_soon(send, number)
    await limiter.aclose()
    print(succeeded, flush=True)


if __name__ == "__main__":
    base, redis, count, scale, name = sys.argv[1:6]
    anyio.run(main, base, redis, int(count), float(scale), name)
