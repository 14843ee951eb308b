"""Bulk send to 1,000,000 recipients from an async generator: CPU time and peak memory growth.

nim_async (chunking, validation, signing, bounded concurrency, merged result)
against baselines measured in the same run: raw aiohttp and raw httpx doing
the same job by hand (chunks of 500, signed form posts, 4 in flight). Every
side talks over loopback sockets to bench_servers.py's fixed-answer server in
another process, which reads each request whole and answers ``{"code": 200,
...}``; the figures are the client process's own CPU time and peak memory.
Each side runs in a fresh process (with its own server) after a warm-up.

Run: ``nox -s bench`` or ``python benchmarks/bench_bulk.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_servers import serving

RECIPIENTS = 1_000_000
WARM_UP_RECIPIENTS = 20_000
CHUNK = 500
CONCURRENCY = 4
MEMORY_GOAL_MB = 80.0
SIDES = ("raw_aiohttp", "raw_httpx", "nim_async", "journalled")


async def recipients(count: int) -> AsyncIterator[str]:
    for number in range(count):
        yield f"user{number:07d}"


async def run_nim_async(base_url: str, count: int, journal: str | None = None) -> int:
    import nim_async as nim

    async with nim.NimClient(
        "bench-key", "bench-secret", base_url=base_url, rate_limits=None
    ) as client:
        result = await client.send_batch_msg(
            "sender",
            recipients(count),
            nim.Text("hello"),
            max_concurrency=CONCURRENCY,
            job=nim.BatchJob(journal),
        )
    return result.accepted


async def run_nim_async_journalled(base_url: str, count: int) -> int:
    """The same with an SQLite journal: two durable writes per chunk."""
    with tempfile.TemporaryDirectory() as directory:
        return await run_nim_async(base_url, count, os.path.join(directory, f"job-{count}.sqlite"))


def _signed_form(chunk: list[str], body: str) -> tuple[bytes, dict[str, str]]:
    nonce, now = secrets.token_hex(16), str(int(time.time()))
    digest = hashlib.sha1(f"bench-secret{nonce}{now}".encode()).hexdigest()
    form = {"fromAccid": "sender", "toAccids": json.dumps(chunk), "type": "0", "body": body}
    headers = {
        "AppKey": "bench-key",
        "Nonce": nonce,
        "CurTime": now,
        "CheckSum": digest,
        "Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
    }
    return urlencode(form).encode(), headers


async def _by_hand(count: int, post: Callable[[bytes, dict[str, str]], Awaitable[int]]) -> int:
    """Chunks of ``CHUNK``, ``CONCURRENCY`` posts in flight, as users write it by hand."""
    accepted = 0
    slots = anyio.Semaphore(CONCURRENCY)
    body = json.dumps({"msg": "hello"})

    async def send(chunk: list[str]) -> None:
        nonlocal accepted
        try:
            if await post(*_signed_form(chunk, body)) == 200:
                accepted += len(chunk)
        finally:
            slots.release()

    async with anyio.create_task_group() as group:
        chunk: list[str] = []
        async for accid in recipients(count):
            chunk.append(accid)
            if len(chunk) == CHUNK:
                await slots.acquire()
                group.start_soon(send, chunk)
                chunk = []
        if chunk:
            await slots.acquire()
            group.start_soon(send, chunk)
    return accepted


async def run_raw_httpx(base_url: str, count: int) -> int:
    import httpx

    async with httpx.AsyncClient(base_url=base_url) as http:

        async def post(content: bytes, headers: dict[str, str]) -> int:
            response = await http.post("msg/sendBatchMsg.action", content=content, headers=headers)
            code: int = response.json()["code"]
            return code

        return await _by_hand(count, post)


async def run_raw_aiohttp(base_url: str, count: int) -> int:
    import aiohttp

    url = base_url + "msg/sendBatchMsg.action"
    async with aiohttp.ClientSession() as session:

        async def post(content: bytes, headers: dict[str, str]) -> int:
            async with session.post(url, data=content, headers=headers) as response:
                code: int = (await response.json())["code"]
            return code

        return await _by_hand(count, post)


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(side: str) -> dict[str, float]:
    """Run one side in this process: warm up, reset the peak, run, report."""
    job = {
        "nim_async": run_nim_async,
        "raw_httpx": run_raw_httpx,
        "raw_aiohttp": run_raw_aiohttp,
        "journalled": run_nim_async_journalled,
    }[side]
    with serving("fixed") as server:
        anyio.run(job, server.url, WARM_UP_RECIPIENTS)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM, the peak resident size, to the current size
        before = _rss_kb("VmRSS:")
        started_cpu, started = time.process_time(), time.perf_counter()
        accepted = anyio.run(job, server.url, RECIPIENTS)
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
        peak_mb = (_rss_kb("VmHWM:") - before) / 1024
    assert accepted == RECIPIENTS, accepted
    return {"cpu": cpu, "wall": wall, "peak_mb": peak_mb}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--side":
        print(json.dumps(measure(sys.argv[2])))
        return
    results = {}
    for side in SIDES:
        out = subprocess.run(
            [sys.executable, __file__, "--side", side],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ},
        ).stdout
        results[side] = json.loads(out)
    raw, ours = results["raw_aiohttp"], results["nim_async"]
    print(
        f"bulk send to {RECIPIENTS:,} recipients from an async generator "
        f"(chunks of {CHUNK}, {CONCURRENCY} in flight)"
    )
    for side, numbers in results.items():
        print(
            f"  {side:10s} CPU {numbers['cpu']:6.2f} s  wall {numbers['wall']:6.2f} s  "
            f"peak memory growth {numbers['peak_mb']:6.1f} MB"
        )
    print(
        f"  ratio nim_async / raw aiohttp: CPU {ours['cpu'] / raw['cpu']:.2f}x, "
        f"peak memory growth {ours['peak_mb'] - raw['peak_mb']:+.1f} MB"
    )
    journalled = results["journalled"]
    print(
        f"  with an SQLite journal: CPU {journalled['cpu'] / raw['cpu']:.2f}x raw aiohttp, "
        f"peak memory growth {journalled['peak_mb']:+.1f} MB"
    )
    for side in ("nim_async", "journalled"):
        if results[side]["peak_mb"] > MEMORY_GOAL_MB:
            raise SystemExit(
                f"{side}: peak memory growth {results[side]['peak_mb']:.1f} MB over the "
                f"{MEMORY_GOAL_MB:.0f} MB goal"
            )


if __name__ == "__main__":
    main()
