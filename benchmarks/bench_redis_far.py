"""RedisLimiter at a real network distance: Redis 5 ms away, a 1000 calls/s budget, 3 processes.

A delaying proxy (its own process) sits between the workers and a
redis-server of our own on loopback: every chunk, either way, is passed on
``DELAY`` seconds after it arrived, in order, so a round trip to Redis takes
at least ``2 x DELAY`` however many commands are pipelined on it. Three worker
processes share one ``RedisLimiter`` budget through it, and each starts its
sendAttachMsg calls at once.

The NIM server is bench_servers.py's fixed-answer server in a process of its
own, which the workers reach over loopback sockets through ``NimClient``'s
default transport: it notes when each request arrived and answers after
``LATENCY``. At 1000 calls/s on a 2-CPU machine the strict emulator (uvicorn
and its checks) beside the clients, Redis and the proxy would measure the
machine, not the limiter; so the server's count of 416 is made afterwards
from its arrival times (wall clock, one machine): every arrival that found
``CALLS_PER_SECOND`` others in the second before it is one the real server
would have answered 416. The workers' warm-up calls arrive before any
measured call starts and are left out.

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
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

import nim_async as nim

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import APP_KEY, APP_SECRET, ideal_seconds

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


async def worker(base_url: str, redis_url: str, calls: int, name: str) -> None:
    """One process: warm up, ``bench_limits.burst_on_go``, then print one JSON line: every
    call's (start, answer, completed)."""
    import bench_limits

    limiter = nim.RedisLimiter(redis_url, prefix="far")
    async with nim.NimClient(
        APP_KEY, APP_SECRET, base_url=base_url, rate_limits=LIMITS, limiter=limiter
    ) as client:
        for number in range(WARM_UP_CALLS):  # connections and scripts, before the clock runs
            await client.send_attach_msg("alice", f"{name}-warm-{number}", "x")
        # The warm-up's slots free a second after their answers: otherwise they
        # would come back one by one during the measured burst.
        await anyio.sleep(1.1)
        results = await bench_limits.burst_on_go(client, calls, name)
    await limiter.aclose()
    print(json.dumps(results))


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
    from bench_servers import serving

    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with (
        bench_limits.redis_server(binary) as redis_url,
        delaying_proxy(redis_url) as far_url,
        serving("fixed", LATENCY, 1) as server,
    ):
        command = [sys.executable, __file__, "--worker", server.url, far_url]
        outputs = bench_limits.run_workers(command, PROCESSES, CALLS_PER_PROCESS)
    calls = [
        (start, end, ok)
        for output in outputs
        for start, end, ok in json.loads(output.splitlines()[-1])
    ]
    first = min(start for start, _, _ in calls)
    arrivals = [at for at in server.counts["arrivals"] if at >= first]
    return {"calls": calls, "rate_limited": refusals(arrivals, CALLS_PER_SECOND, 1.0)}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--proxy":
        asyncio.run(_proxy(int(sys.argv[2]), float(sys.argv[3])))
    elif len(sys.argv) == 6 and sys.argv[1] == "--worker":
        base_url, redis_url, calls, name = sys.argv[2:6]
        anyio.run(worker, base_url, redis_url, int(calls), name)
    else:
        result = run()
        if result is None:
            sys.exit("no redis-server on PATH")
        calls = result["calls"]
        starts = min(c[0] for c in calls)
        elapsed = max(c[1] for c in calls) - starts
        done = sum(1 for c in calls if c[2])
        share = ideal_seconds(done, CALLS_PER_SECOND, 1.0, LATENCY) / elapsed
        print(
            f"{done}/{len(calls)} in {elapsed:.2f} s, share {share:.1%}, "
            f"{result['rate_limited']} x 416"
        )
