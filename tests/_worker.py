"""One worker process of the multi-process test: sends through a shared RedisLimiter.

Usage: python -m tests._worker BASE_URL REDIS_URL CALLS START_AT WORKER
Prints one JSON list of [sent, answered, code] per request.
"""

from __future__ import annotations

import json
import sys
import time

import anyio
import httpx

import nim_async as nim

from ._timing import TimingTransport
from .test_redis_limiter import LIMITS


async def main(base_url: str, redis_url: str, calls: int, start_at: float, worker: str) -> None:
    timing = TimingTransport(httpx.AsyncHTTPTransport())
    limiter = nim.RedisLimiter(redis_url, prefix="multi")
    async with nim.NimClient(
        "test-app-key",
        "test-app-secret-do-not-leak",
        base_url=base_url,
        transport=timing,
        rate_limits=LIMITS,
        limiter=limiter,
        max_connections=200,
    ) as client:
        await anyio.sleep(max(0.0, start_at - time.time()))
        async with anyio.create_task_group() as group:
            for number in range(calls):
                group.start_soon(client.send_attach_msg, "alice", f"{worker}-{number}", "x")
    await limiter.aclose()
    print(json.dumps([[e.sent, e.answered, e.code] for e in timing.exchanges]))


if __name__ == "__main__":
    base, redis, count, start, name = sys.argv[1:6]
    anyio.run(main, base, redis, int(count), float(start), name)
