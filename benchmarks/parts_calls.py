"""The per-call parts of benchmarks/run_all.py: CPU, the event loop, memory, uploads.

Every part talks over loopback sockets to a server in another process
(bench_servers.py), through the clients of bench_clients.py. Definitions:
the docstring of run_all.py; settings: bench_common.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

import anyio
from bench_clients import Send, client
from bench_common import (
    CPU_CALLS,
    CPU_IN_FLIGHT,
    CPU_WARM_UP,
    HEARTBEAT,
    MEMORY_CALLS,
    MEMORY_CHECKPOINT,
    MEMORY_WARM_UP,
    STALL_CALLS,
    STALL_DEADLINE,
    STALL_DELAY,
    STALL_WARM_UP,
    reset_peak,
    rss_kb,
)
from bench_servers import serving


async def _calls(send: Send, count: int, in_flight: int) -> None:
    """``count`` calls, ``in_flight`` at a time: each worker starts its next when one ends."""
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            code = await send(number)
            if code != 200:
                raise RuntimeError(f"call {number} answered code {code}")

    async with anyio.create_task_group() as group:
        for _ in range(in_flight):
            group.start_soon(worker)


# --- CPU per call --------------------------------------------------------------------------


async def _cpu_per_call(name: str, base_url: str, in_flight: int) -> float:
    async with client(name, base_url) as send:
        await _calls(send, CPU_WARM_UP, in_flight)  # opens the connections, fills the caches
        started = time.process_time()
        await _calls(send, CPU_CALLS, in_flight)
        return (time.process_time() - started) / CPU_CALLS


def part_cpu(name: str) -> dict[str, Any]:
    """Client CPU seconds per call of ``name`` at each of ``CPU_IN_FLIGHT``, fixed answers."""
    with serving("fixed") as server:
        seconds = {
            str(in_flight): anyio.run(_cpu_per_call, name, server.url, in_flight)
            for in_flight in CPU_IN_FLIGHT
        }
    expected = len(CPU_IN_FLIGHT) * (CPU_WARM_UP + CPU_CALLS)
    if server.counts["requests"] != expected:
        raise RuntimeError(f"the server saw {server.counts['requests']} of {expected} requests")
    return seconds


# --- event loop stall ----------------------------------------------------------------------


class _Stall:
    """The heartbeat's record of one run, and a watchdog that ends a run past its deadline.

    httpx's pool does work in proportion to its waiters for each request and
    each cancellation: with ``STALL_CALLS`` waiting, a run takes minutes and
    cancelling it as long again. So a run past ``STALL_DEADLINE`` is not
    cancelled; a thread reports it, counting the gap in progress, and ends the
    process (its server stops when its stdin closes).
    """

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.answered = 0
        self.longest = 0.0
        self.last_beat = self.started = time.perf_counter()
        self._finished = threading.Event()

    def result(self, took: float) -> dict[str, Any]:
        longest = max(self.longest, time.perf_counter() - self.last_beat)
        return {"gap": longest, "answered": self.answered, "calls": self.calls, "wall": took}

    def watch(self) -> None:
        def watchdog() -> None:
            if not self._finished.wait(STALL_DEADLINE):
                print(json.dumps(self.result(STALL_DEADLINE)), flush=True)
                os._exit(0)

        threading.Thread(target=watchdog, daemon=True).start()

    def finish(self) -> None:
        self._finished.set()


async def _longest_gap(name: str, base_url: str, calls: int) -> dict[str, Any]:
    """``calls`` calls started at once through a fresh client: the longest gap between
    heartbeats (each sleeps ``HEARTBEAT``) while they run, and how long they took."""
    stall = _Stall(calls)
    running = True

    async def beat() -> None:
        while running:
            await asyncio.sleep(HEARTBEAT)
            now = time.perf_counter()
            stall.longest = max(stall.longest, now - stall.last_beat)
            stall.last_beat = now

    async def call(send: Send, number: int) -> None:
        code = await send(number)
        if code != 200:
            raise RuntimeError(f"call {number} answered code {code}")
        stall.answered += 1

    async with anyio.create_task_group() as beating:
        beating.start_soon(beat)
        await asyncio.sleep(HEARTBEAT * 3)
        async with client(name, base_url) as send:
            started = stall.last_beat = time.perf_counter()
            stall.longest = 0.0
            stall.watch()
            async with anyio.create_task_group() as group:
                for number in range(calls):
                    group.start_soon(call, send, number)
            stall.finish()
            result = stall.result(time.perf_counter() - started)
            running = False
    return result


def part_stall(name: str) -> dict[str, Any]:
    """The longest heartbeat gap while ``name`` makes ``STALL_CALLS`` calls at once."""
    with serving("fixed", STALL_DELAY) as server:
        anyio.run(_longest_gap, name, server.url, STALL_WARM_UP)
        result: dict[str, Any] = anyio.run(_longest_gap, name, server.url, STALL_CALLS)
    return result


# --- memory over many calls ------------------------------------------------------------------


async def _memory_marks(base_url: str) -> dict[str, float]:
    async with client("nim_async", base_url) as send:
        await _calls(send, MEMORY_WARM_UP, 1)
        reset_peak()
        before = rss_kb("VmRSS:")
        marks: dict[str, float] = {}
        for number in range(1, MEMORY_CALLS + 1):
            await send(number)
            if number in (MEMORY_CHECKPOINT, MEMORY_CALLS):
                marks[str(number)] = (rss_kb("VmHWM:") - before) / 1024
        return marks


def part_memory() -> dict[str, Any]:
    """Peak RSS growth in MB over ``MEMORY_CALLS`` sequential calls, at the checkpoints."""
    with serving("fixed") as server:
        return anyio.run(_memory_marks, server.url)


# --- upload: bench_upload_memory.py ----------------------------------------------------------


def part_upload() -> dict[str, Any]:
    import bench_upload_memory as upload

    with serving("fixed") as server:
        growth = anyio.run(upload.peak_growth, server.url, "upload")
    return {
        "times": growth / upload.FILE_BYTES,
        "mb": growth / 1e6,
        "goal": upload.GOAL_TIMES_THE_FILE,
    }
