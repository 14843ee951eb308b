"""RedisLimiter at a real network distance: Redis 5 ms away, a 1000 calls/s budget, 3 processes.

A delaying proxy (its own process) sits between the workers and a
redis-server of our own on loopback: every chunk, either way, is passed on
``DELAY`` seconds after it arrived, in order, so a round trip to Redis takes
at least ``2 x DELAY`` however many commands are pipelined on it. Three worker
processes share one ``RedisLimiter`` budget through it, and each starts its
sendAttachMsg calls at once.

The NIM server is a stand-in per worker, in-process, that notes when each
request arrived and answers ``{"code": 200}`` after ``LATENCY``: at 1000
calls/s on a 2-CPU machine, the strict emulator's checks (or HTTP over
loopback) in the same processes as the clients, Redis and the proxy would
measure the machine, not the limiter. The one server's view is rebuilt
afterwards: the arrival times of the three workers (wall clock, one machine)
are merged, and every arrival that found ``CALLS_PER_SECOND`` others in the
second before it is counted as a 416 the real server would have answered.

Run by ``benchmarks/run_all.py`` (part ``redis_far``), or alone:
``python benchmarks/bench_redis_far.py`` prints the rows it measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import anyio
import httpx

import nim_async as nim

APP_KEY = "bench-app-key"
APP_SECRET = "bench-app-secret"
DELAY = 0.005  # seconds, each way
CALLS_PER_SECOND = 1000
PROCESSES = 3
CALLS_PER_PROCESS = 2000
LATENCY = 0.02  # seconds from a request's arrival to its answer
WARM_UP_CALLS = 20
LIMITS = nim.RateLimits.default().with_action("sendAttachMsg", nim.Rate(CALLS_PER_SECOND, 1))


# --- the delaying proxy ----------------------------------------------------------------------


async def _pass_on(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    """Copy reader to writer, each chunk ``delay`` after it arrived, keeping the order."""
    loop = asyncio.get_running_loop()
    due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            at, chunk = await due.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, at - loop.time()))
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            due.put_nowait((loop.time() + delay, chunk))
    due.put_nowait((0.0, b""))
    with contextlib.suppress(ConnectionError):
        await sender


async def _proxy(upstream_port: int, delay: float) -> None:
    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(_pass_on(reader, up_writer, delay), _pass_on(up_reader, writer, delay))

    server = await asyncio.start_server(connect, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def delaying_proxy(redis_url: str, delay: float = DELAY) -> Iterator[str]:
    """A proxy in front of ``redis_url`` that delays every chunk by ``delay``; yields its URL."""
    upstream = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    process = subprocess.Popen(
        [sys.executable, __file__, "--proxy", str(upstream), str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- one worker process ----------------------------------------------------------------------


class _Arrivals(httpx.AsyncBaseTransport):
    """A stand-in NIM server: notes each request's arrival, answers 200 after ``LATENCY``."""

    def __init__(self) -> None:
        self.times: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.time())
        await anyio.sleep(LATENCY)
        return httpx.Response(200, json={"code": 200})


async def worker(redis_url: str, calls: int, name: str) -> None:
    """One process: warm up, ``bench_limits.burst_on_go``, then print one JSON line: every
    call's (start, answer, completed) and the arrival times the stand-in server noted."""
    import bench_limits

    server = _Arrivals()
    limiter = nim.RedisLimiter(redis_url, prefix="far")
    async with nim.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url="http://nim.bench/nimserver/",
        transport=server,
        rate_limits=LIMITS,
        limiter=limiter,
    ) as client:
        for number in range(WARM_UP_CALLS):  # connections and scripts, before the clock runs
            await client.send_attach_msg("alice", f"{name}-warm-{number}", "x")
        # The warm-up's slots free a second after their answers: otherwise they
        # would come back one by one during the measured burst.
        await anyio.sleep(1.1)
        server.times.clear()
        results = await bench_limits.burst_on_go(client, calls, name)
    await limiter.aclose()
    print(json.dumps({"calls": results, "arrivals": server.times}))


def refusals(arrivals: list[float], calls: int, per: float) -> int:
    """How many arrivals found ``calls`` others in the ``per`` seconds before them."""
    window: deque[float] = deque()
    refused = 0
    for at in sorted(arrivals):
        while window and window[0] <= at - per:
            window.popleft()
        if len(window) >= calls:
            refused += 1
        window.append(at)
    return refused


def run() -> dict[str, Any] | None:
    """Measure; return every call's (start, answer, completed) and the 416 a server would answer.

    None without redis-server on PATH.
    """
    import bench_limits

    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with bench_limits.redis_server(binary) as redis_url, delaying_proxy(redis_url) as far_url:
        command = [sys.executable, __file__, "--worker", far_url]
        outputs = [
            json.loads(output.splitlines()[-1])
            for output in bench_limits.run_workers(command, PROCESSES, CALLS_PER_PROCESS)
        ]
    arrivals = [at for output in outputs for at in output["arrivals"]]
    return {
        "calls": [tuple(row) for output in outputs for row in output["calls"]],
        "rate_limited": refusals(arrivals, CALLS_PER_SECOND, 1.0),
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--proxy":
        asyncio.run(_proxy(int(sys.argv[2]), float(sys.argv[3])))
    elif len(sys.argv) == 5 and sys.argv[1] == "--worker":
        redis_url, calls, name = sys.argv[2:5]
        anyio.run(worker, redis_url, int(calls), name)
    else:
        result = run()
        if result is None:
            sys.exit("no redis-server on PATH")
        calls = result["calls"]
        starts = min(c[0] for c in calls)
        elapsed = max(c[1] for c in calls) - starts
        done = sum(1 for c in calls if c[2])
        share = done / (CALLS_PER_SECOND * (elapsed + 1))
        print(
            f"{done}/{len(calls)} in {elapsed:.2f} s, share {share:.1%}, "
            f"{result['rate_limited']} x 416"
        )
