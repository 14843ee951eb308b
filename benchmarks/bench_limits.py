"""Rate limiters against the strict emulator: 416 answers, budget share, elapsed against ideal.

Two measurements, at windows of 0.5 s (compressed no further: below that the
round trip dominates, DESIGN §3):

- ``LocalLimiter``: one client sends a burst (every call started at once) to
  the in-process emulator, for a per-second action, a batch action and
  broadcasts.
- ``RedisLimiter``: three worker processes share one budget in a redis-server
  of our own on a free loopback port, and send to one emulator served on
  another loopback port.

For each: how many calls were answered 416 (the only thing that must be zero:
the script exits 1 otherwise), the share of the budget used, and the elapsed
time against the ideal. A slot is held from the start of its call until
``per`` after its answer, so the ideal is "windows x per + one answer time per
window" and the budget admits ``calls`` every ``per`` + one answer time.

Run: ``nox -s bench`` or ``python benchmarks/bench_limits.py``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

import anyio
import anyio.to_thread
import attrs
import httpx

import nim_async as nim
from nim_async.testing import NimEmulator

APP_KEY = "bench-app-key"
APP_SECRET = "bench-app-secret"
BASE_URL = "http://nim.bench/nimserver/"
WINDOW = 0.5
# 100 calls per 0.5 s for every action (block 5 s).
PER_SECOND_ACTIONS = nim.RateLimits.default().scaled(WINDOW)
# One call of a worker's burst: (start, answer, completed), wall-clock seconds.
Call = tuple[float, float, bool]
# Batches 120 per 0.5 s, broadcasts 10 per 0.5 s (blocks 0.5 s).
PER_MINUTE_ACTIONS = nim.RateLimits.default().scaled(WINDOW / 60)
ATTACH_CALLS = 600
BATCH_CALLS = 360
BROADCASTS = 30
WARM_UP_CALLS = 50
PROCESSES = 3
CALLS_PER_PROCESS = 200


@attrs.frozen
class Exchange:
    sent: float
    answered: float
    code: int | None


class TimingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; ``exchanges`` lists every request with wall-clock times.

    Wall-clock (``time.time``) so that the workers' exchanges compare across processes.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.time()
        response = await self.inner.handle_async_request(request)
        await response.aread()
        try:
            code = json.loads(response.content).get("code")
        except ValueError:
            code = None
        self.exchanges.append(Exchange(sent, time.time(), code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def elapsed_seconds(exchanges: list[Exchange]) -> float:
    """From the first send to the last answer."""
    return max(e.answered for e in exchanges) - min(e.sent for e in exchanges)


def ideal_seconds(exchanges: list[Exchange], calls: int, per: float) -> float:
    """The shortest time the budget allows: windows x per + one answer time per window.

    A slot frees ``per`` after its answer, so each window costs ``per`` plus its
    answer time: from its first send to its last answer (requests grouped in
    send order, ``calls`` to a window), which includes the time the client and
    the server need to handle a window's calls. What this leaves out is the
    limiter's own slack between windows.
    """
    ordered = sorted(exchanges, key=lambda exchange: exchange.sent)
    windows = [ordered[i : i + calls] for i in range(0, len(ordered), calls)]
    answering = sum(
        max(e.answered for e in window) - min(e.sent for e in window) for window in windows
    )
    return (len(windows) - 1) * per + answering


def budget_share(exchanges: list[Exchange], calls: int, per: float) -> float:
    """The share of the budget used: calls made / calls the budget admits in the same time.

    With slots freeing ``per`` after their answers, the budget admits ``calls``
    every ``per`` + one answer time (the median measured); over the elapsed
    time plus the last window's ``per``, that is
    calls x (elapsed + per) / (per + answer).
    """
    answer = statistics.median(e.answered - e.sent for e in exchanges)
    admitted = calls * (elapsed_seconds(exchanges) + per) / (per + answer)
    return len(exchanges) / admitted


Send = Callable[[nim.NimClient, int], Awaitable[object]]


async def _attach(client: nim.NimClient, number: int) -> None:
    await client.send_attach_msg("alice", f"user{number}", {"n": number})


async def _batch(client: nim.NimClient, number: int) -> None:
    result = await client.send_batch_attach_msg("alice", [f"user{number}"], "x")
    result.raise_for_failures()


async def _broadcast(client: nim.NimClient, number: int) -> None:
    await client.broadcast(f"news {number}")


@attrs.frozen
class Row:
    name: str
    calls: int
    failed: int
    rate_limited: int
    elapsed: float
    ideal: float | None  # None where calls from several processes interleave
    share: float


async def local_burst(name: str, send: Send, count: int, limits: nim.RateLimits) -> Row:
    """Start ``count`` calls at once through one client with its own LocalLimiter."""
    action = f"msg/{name}"
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=limits)
    timing = TimingTransport(emulator.transport())
    failed = 0

    async def call(client: nim.NimClient, number: int) -> None:
        nonlocal failed
        try:
            await send(client, number)
        except nim.NimError:
            failed += 1

    async with (
        nim.NimClient(
            APP_KEY,
            APP_SECRET,
            base_url=BASE_URL,
            transport=timing,
            rate_limits=limits,
            limiter=nim.LocalLimiter(),
        ) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(count):
            group.start_soon(call, client, number)
    (rate, *_) = limits.for_action(action).rates
    return Row(
        name,
        count,
        failed,
        emulator.rate_limited,
        elapsed_seconds(timing.exchanges),
        ideal_seconds(timing.exchanges, rate.calls, rate.per),
        budget_share(timing.exchanges, rate.calls, rate.per),
    )


async def run_local() -> list[Row]:
    await local_burst("sendAttachMsg", _attach, WARM_UP_CALLS, PER_SECOND_ACTIONS)
    return [
        await local_burst("sendAttachMsg", _attach, ATTACH_CALLS, PER_SECOND_ACTIONS),
        await local_burst("sendBatchAttachMsg", _batch, BATCH_CALLS, PER_MINUTE_ACTIONS),
        await local_burst("broadcastMsg", _broadcast, BROADCASTS, PER_MINUTE_ACTIONS),
    ]


# --- RedisLimiter: worker processes -------------------------------------------------


async def burst_on_go(client: nim.NimClient, calls: int, name: str) -> list[Call]:
    """Print ``ready``, wait for a line on stdin, then start ``calls`` sendAttachMsg at once.

    Returns each call's (start, answer, completed) on the wall clock, which
    the worker processes of one machine share.
    """
    results: list[Call] = []

    async def call(number: int) -> None:
        start = time.time()
        ok = True
        try:
            await client.send_attach_msg("alice", f"{name}-{number}", "x")
        except nim.NimError:
            ok = False
        results.append((start, time.time(), ok))

    print("ready", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.readline)
    async with anyio.create_task_group() as group:
        for number in range(calls):
            group.start_soon(call, number)
    return results


async def worker(base_url: str, redis_url: str, calls: int, name: str) -> None:
    """One process: `burst_on_go`, then print the exchanges as one JSON list of
    ``[sent, answered, code]``."""
    timing = TimingTransport(httpx.AsyncHTTPTransport())
    limiter = nim.RedisLimiter(redis_url, prefix="bench")
    async with nim.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url=base_url,
        transport=timing,
        rate_limits=PER_SECOND_ACTIONS,
        limiter=limiter,
        max_connections=200,
    ) as client:
        await burst_on_go(client, calls, name)  # counted from the exchanges
    await limiter.aclose()
    print(json.dumps([[e.sent, e.answered, e.code] for e in timing.exchanges]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def redis_server(binary: str) -> Iterator[str]:
    """A redis-server of our own on a free loopback port; yields its URL, then stops it."""
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start within 10 s") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_workers(command: list[str], processes: int, calls: int) -> list[str]:
    """Start ``processes`` workers (``command`` + calls + name), wait until each says
    ``ready``, release them together, and return each one's output.

    Raises:
        RuntimeError: A worker did not start or failed.
    """
    workers = [
        subprocess.Popen(
            [*command, str(calls), f"w{number}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for number in range(processes)
    ]
    try:
        for process in workers:
            assert process.stdout is not None
            if process.stdout.readline() != "ready\n":
                raise RuntimeError("a worker did not start")
        for process in workers:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=120)[0] for process in workers]
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
    if any(process.returncode for process in workers):
        raise RuntimeError("a worker failed")
    return outputs


def run_redis(redis_url: str) -> Row:
    """Three worker processes, one served emulator, one budget in Redis."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=PER_SECOND_ACTIONS)
    with emulator.serve() as base_url:
        command = [sys.executable, __file__, "--worker", base_url, redis_url]
        outputs = run_workers(command, PROCESSES, CALLS_PER_PROCESS)
    exchanges = [Exchange(*row) for output in outputs for row in json.loads(output)]
    (rate, *_) = PER_SECOND_ACTIONS.for_action("msg/sendAttachMsg").rates
    return Row(
        f"{PROCESSES} processes, sendAttachMsg",
        PROCESSES * CALLS_PER_PROCESS,
        sum(e.code != 200 for e in exchanges) - emulator.rate_limited,
        emulator.rate_limited,
        elapsed_seconds(exchanges),
        None,
        budget_share(exchanges, rate.calls, rate.per),
    )


def _print_table(title: str, rows: list[Row]) -> None:
    print(title)
    print(
        f"  {'run':32s} {'calls':>6s} {'failed':>6s} {'416':>5s} {'elapsed':>8s} "
        f"{'ideal':>8s} {'/ideal':>7s} {'budget share':>13s}"
    )
    for row in rows:
        if row.ideal is None:
            ideal = f"{'-':>8s} {'-':>7s}"
        else:
            ideal = f"{row.ideal:7.2f}s {row.elapsed / row.ideal:6.2f}x"
        print(
            f"  {row.name:32s} {row.calls:6d} {row.failed:6d} {row.rate_limited:5d} "
            f"{row.elapsed:7.2f}s {ideal} {row.share:12.1%}"
        )


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        base_url, redis_url, calls, name = sys.argv[2:6]
        anyio.run(worker, base_url, redis_url, int(calls), name)
        return
    rows = anyio.run(run_local)
    _print_table(
        f"LocalLimiter: one client, every call started at once, windows of {WINDOW} s", rows
    )
    binary = shutil.which("redis-server")
    if binary is None:
        print("RedisLimiter: skipped, redis-server is not on PATH")
    else:
        with redis_server(binary) as redis_url:
            redis_row = run_redis(redis_url)
        _print_table(
            f"RedisLimiter: {PROCESSES} processes x {CALLS_PER_PROCESS} calls over loopback, "
            f"windows of {WINDOW} s",
            [redis_row],
        )
        rows.append(redis_row)
    rate_limited = sum(row.rate_limited for row in rows)
    if rate_limited:
        raise SystemExit(f"{rate_limited} calls were answered 416")


if __name__ == "__main__":
    main()
