"""Bulk send to 1,000,000 recipients from an async generator: CPU time and peak memory growth.

nim_async (chunking, validation, signing, bounded concurrency, merged result)
against a baseline measured in the same run: raw httpx doing the same job by
hand (chunks of 500, signed form posts, 4 in flight). Both talk to the same
in-process transport that answers ``{"code": 200}``, so the numbers are the
clients' own cost. Each side runs in a fresh process after a warm-up.

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
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import anyio
import httpx

RECIPIENTS = 1_000_000
WARM_UP_RECIPIENTS = 20_000
CHUNK = 500
CONCURRENCY = 4
MEMORY_GOAL_MB = 80.0
BASE_URL = "http://nim.bench/nimserver/"


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"code": 200})


async def recipients(count: int) -> AsyncIterator[str]:
    for number in range(count):
        yield f"user{number:07d}"


async def run_nim_async(count: int, journal: str | None = None) -> int:
    import nim_async as nim

    async with nim.NimClient(
        "bench-key",
        "bench-secret",
        base_url=BASE_URL,
        transport=httpx.MockTransport(_answer),
        rate_limits=None,
    ) as client:
        result = await client.send_batch_msg(
            "sender",
            recipients(count),
            nim.Text("hello"),
            max_concurrency=CONCURRENCY,
            job=nim.BatchJob(journal),
        )
    return result.accepted


async def run_nim_async_journalled(count: int) -> int:
    """The same with an SQLite journal: two durable writes per chunk."""
    with tempfile.TemporaryDirectory() as directory:
        return await run_nim_async(count, os.path.join(directory, f"job-{count}.sqlite"))


async def run_raw_httpx(count: int) -> int:
    accepted = 0
    slots = anyio.Semaphore(CONCURRENCY)
    body = json.dumps({"msg": "hello"})

    async def post(http: httpx.AsyncClient, chunk: list[str]) -> None:
        nonlocal accepted
        try:
            nonce, now = secrets.token_hex(16), str(int(time.time()))
            digest = hashlib.sha1(f"bench-secret{nonce}{now}".encode()).hexdigest()
            form = {"fromAccid": "sender", "toAccids": json.dumps(chunk), "type": "0", "body": body}
            response = await http.post(
                "msg/sendBatchMsg.action",
                content=urlencode(form).encode(),
                headers={
                    "AppKey": "bench-key",
                    "Nonce": nonce,
                    "CurTime": now,
                    "CheckSum": digest,
                    "Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
                },
            )
            if response.json()["code"] == 200:
                accepted += len(chunk)
        finally:
            slots.release()

    async with (
        httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(_answer)) as http,
        anyio.create_task_group() as group,
    ):
        chunk: list[str] = []
        async for accid in recipients(count):
            chunk.append(accid)
            if len(chunk) == CHUNK:
                await slots.acquire()
                group.start_soon(post, http, chunk)
                chunk = []
        if chunk:
            await slots.acquire()
            group.start_soon(post, http, chunk)
    return accepted


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
        "journalled": run_nim_async_journalled,
    }[side]
    anyio.run(job, WARM_UP_RECIPIENTS)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM, the peak resident size, to the current size
    before = _rss_kb("VmRSS:")
    started_cpu, started = time.process_time(), time.perf_counter()
    accepted = anyio.run(job, RECIPIENTS)
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    assert accepted == RECIPIENTS, accepted
    return {"cpu": cpu, "wall": wall, "peak_mb": (_rss_kb("VmHWM:") - before) / 1024}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--side":
        print(json.dumps(measure(sys.argv[2])))
        return
    results = {}
    for side in ("raw_httpx", "nim_async", "journalled"):
        out = subprocess.run(
            [sys.executable, __file__, "--side", side],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ},
        ).stdout
        results[side] = json.loads(out)
    raw, ours = results["raw_httpx"], results["nim_async"]
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
        f"  ratio nim_async / raw httpx: CPU {ours['cpu'] / raw['cpu']:.2f}x, "
        f"peak memory growth {ours['peak_mb'] - raw['peak_mb']:+.1f} MB"
    )
    journalled = results["journalled"]
    print(
        f"  with an SQLite journal: CPU {journalled['cpu'] / raw['cpu']:.2f}x raw httpx, "
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
