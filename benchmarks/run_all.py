"""Every benchmark in one run: one table, printed and written with a plot to benchmarks/results/.

Run: ``nox -s bench`` or ``python benchmarks/run_all.py`` (extras ``emulator``,
``redis`` and ``bench``: aiolimiter and matplotlib; redis-server on PATH for
the RedisLimiter row, which is skipped without it).

Each measurement runs in a fresh process (``run_all.py --part NAME`` prints one
JSON line); this process only collects, prints the table, writes
``benchmarks/results/bench.md`` and ``benchmarks/results/bench.png``.

Rate limits: 600 sendAttachMsg calls started at once against the strict
emulator (in-process transport) with the windows compressed to 0.5 s
(``RateLimits.default().scaled(0.5)``: 100 calls per 0.5 s, a 5 s block),
through five strategies:

1. nim_async with its ``LocalLimiter``;
2. nim_async with a ``RedisLimiter`` in 3 processes x 200 calls (the emulator
   served on a loopback port, bench_limits.py's redis-server and workers);
3. raw httpx behind ``aiolimiter.AsyncLimiter(100, 0.5)`` (what users write as
   ``AsyncLimiter(100, 1)`` at real time);
4. raw httpx behind ``AsyncLimiter(1, 0.005)`` (pacing, one call every 5 ms);
5. raw httpx with no limiter.

Every raw strategy, like the official SDKs, waits out the block time after a
416 and retries (through its limiter again), at most ``MAX_ATTEMPTS`` times.
Raw requests are signed as NIM wants (AppKey, Nonce, CurTime, CheckSum).

"share of rate" = completed calls / the calls the window admits in the elapsed
time, ``calls x (elapsed / per + 1)`` (a strict sliding window admits a full
budget at the start, then one more per ``per``); elapsed runs from the first
call's start to the last answer. A client that holds each slot until ``per``
after its answer (what keeps every server window safe whatever the latency)
loses one answer time per window, so 100% is out of reach by design. p50/p99
are from a call's start to its answer, waits and retries included.

Goals (README): no 416 on a nim_async row and every call completed (enforced);
>= 97% of the allowed rate at real 1 s windows and CPU per send_msg <= 1.10x
raw httpx (reported beside the figure; the README says what holds them back;
the CPU goal is enforced only if ``ENFORCE_CPU_GOAL``). The bulk and upload
memory goals of bench_bulk.py and bench_upload_memory.py are enforced too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import anyio.to_thread
import httpx

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

ENFORCE_CPU_GOAL = False
CPU_GOAL = 1.10
REAL_WINDOW_GOAL = 0.97

APP_KEY = "bench-app-key"
APP_SECRET = "bench-app-secret"
BASE_URL = "http://nim.bench/nimserver/"
WINDOW = 0.5
LIMIT = 100  # sendAttachMsg calls per window
BURST_CALLS = 600
WARM_UP_CALLS = 50
PROCESSES = 3
REAL_CALLS = 1000
REAL_LATENCY = 0.02
MAX_ATTEMPTS = 30
RAW_DEADLINE = 120.0  # seconds; a raw run still going is cut off (calls not completed)
CPU_CALLS = 20_000
CPU_WARM_UP = 2_000
CPU_ROUNDS = 3  # fresh processes per side, alternating; the fastest of each side counts
MEMORY_CALLS = 50_000
MEMORY_CHECKPOINT = 10_000
FREEZE_CALLS = 2_000
FREEZE_DELAY = 0.05
HEARTBEAT = 0.01

SEND_MSG_ANSWER = {"code": 200, "data": {"msgid": 1, "timetag": 1, "antispam": False}}


# --- helpers ---------------------------------------------------------------------------


def _signed_headers(app_key: str, secret: str) -> dict[str, str]:
    nonce, now = secrets.token_hex(16), str(int(time.time()))
    return {
        "AppKey": app_key,
        "Nonce": nonce,
        "CurTime": now,
        "CheckSum": hashlib.sha1(f"{secret}{nonce}{now}".encode()).hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _rate_result(
    calls: list[tuple[float, float, bool]], rate_limited: int, limit: int, per: float
) -> dict[str, Any]:
    """calls: (start, answered, completed) per call; the summary for the table."""
    elapsed = max(end for _, end, _ in calls) - min(start for start, _, _ in calls)
    completed = sum(ok for _, _, ok in calls)
    durations = [end - start for start, end, _ in calls]
    return {
        "calls": len(calls),
        "completed": completed,
        "rate_limited": rate_limited,
        "elapsed": elapsed,
        "share": completed / (limit * (elapsed / per + 1)),
        "p50": _percentile(durations, 0.50),
        "p99": _percentile(durations, 0.99),
    }


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM, the peak resident size, to the current size


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
    return _rate_result(calls, emulator.rate_limited, rate.calls, rate.per)


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
    """One process: print ``ready``, wait for a line on stdin, start ``calls`` sends at once."""
    import nim_async as nim

    limiter = nim.RedisLimiter(redis_url, prefix="bench")
    results: list[tuple[float, float, bool]] = []

    async def call(number: int) -> None:
        start = time.time()  # wall clock: compared across processes
        ok = True
        try:
            await client.send_attach_msg("alice", f"{name}-{number}", "x")
        except nim.NimError:
            ok = False
        results.append((start, time.time(), ok))

    async with nim.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url=base_url,
        rate_limits=nim.RateLimits.default().scaled(WINDOW),
        limiter=limiter,
        max_connections=200,
    ) as client:
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        async with anyio.create_task_group() as group:
            for number in range(calls):
                group.start_soon(call, number)
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
    return _rate_result(calls, emulator.rate_limited, LIMIT, WINDOW)  # type: ignore[arg-type]


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
                headers=_signed_headers(APP_KEY, APP_SECRET),
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
    result = _rate_result(calls, emulator.rate_limited, rate.calls, rate.per)
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


# --- CPU per call ------------------------------------------------------------------------


def _answer_send_msg(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=SEND_MSG_ANSWER)


async def _nim_sequential(count: int) -> None:
    import nim_async as nim

    async with nim.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url=BASE_URL,
        transport=httpx.MockTransport(_answer_send_msg),
        rate_limits=None,
    ) as client:
        for number in range(count):
            await client.send_msg("alice", f"user{number}", nim.Text("hello"))


async def _raw_sequential(count: int) -> None:
    body = json.dumps({"msg": "hello"})
    async with httpx.AsyncClient(
        base_url=BASE_URL, transport=httpx.MockTransport(_answer_send_msg)
    ) as http:
        for number in range(count):
            form = {"from": "alice", "ope": "0", "to": f"user{number}", "type": "0", "body": body}
            response = await http.post(
                "msg/sendMsg.action",
                content=urlencode(form).encode(),
                headers=_signed_headers(APP_KEY, APP_SECRET),
            )
            answer = response.json()
            if answer["code"] != 200:
                raise RuntimeError(answer)
            data = answer["data"]
            (data["msgid"], data["timetag"], data["antispam"])


def part_cpu(side: str) -> dict[str, Any]:
    job = {"nim": _nim_sequential, "raw": _raw_sequential}[side]
    anyio.run(job, CPU_WARM_UP)
    started = time.process_time()
    anyio.run(job, CPU_CALLS)
    return {"cpu": time.process_time() - started}


# --- memory over many calls ------------------------------------------------------------------


def part_memory() -> dict[str, Any]:
    import nim_async as nim

    async def job() -> dict[str, float]:
        async with nim.NimClient(
            APP_KEY,
            APP_SECRET,
            base_url=BASE_URL,
            transport=httpx.MockTransport(_answer_send_msg),
            rate_limits=None,
        ) as client:
            for number in range(1000):
                await client.send_msg("alice", f"user{number}", nim.Text("hello"))
            _reset_peak()
            before = _rss_kb("VmRSS:")
            marks: dict[str, float] = {}
            for number in range(1, MEMORY_CALLS + 1):
                await client.send_msg("alice", f"user{number}", nim.Text("hello"))
                if number in (MEMORY_CHECKPOINT, MEMORY_CALLS):
                    marks[str(number)] = (_rss_kb("VmHWM:") - before) / 1024
            return marks

    return anyio.run(job)


# --- event loop freeze -----------------------------------------------------------------------


class _SlowTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(FREEZE_DELAY)
        return httpx.Response(200, json=SEND_MSG_ANSWER)


async def _heartbeat_during(work: Callable[[], Awaitable[None]]) -> float:
    """The longest gap between heartbeats (each sleeps ``HEARTBEAT``) while ``work`` runs."""
    longest = 0.0
    done = False

    async def beat() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(HEARTBEAT)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    async with anyio.create_task_group() as group:
        group.start_soon(beat)
        await asyncio.sleep(HEARTBEAT * 3)
        await work()
        done = True
    return longest


async def part_freeze() -> dict[str, Any]:
    import nim_async as nim

    async def ours() -> None:
        async with (
            nim.NimClient(
                APP_KEY, APP_SECRET, base_url=BASE_URL, transport=_SlowTransport(), rate_limits=None
            ) as client,
            anyio.create_task_group() as group,
        ):
            for number in range(FREEZE_CALLS):
                group.start_soon(client.send_msg, "alice", f"user{number}", nim.Text("hello"))

    async def raw() -> None:
        body = json.dumps({"msg": "hello"})

        async def post(http: httpx.AsyncClient, number: int) -> None:
            form = {"from": "alice", "ope": "0", "to": f"user{number}", "type": "0", "body": body}
            response = await http.post(
                "msg/sendMsg.action",
                content=urlencode(form).encode(),
                headers=_signed_headers(APP_KEY, APP_SECRET),
            )
            response.json()

        async with (
            httpx.AsyncClient(base_url=BASE_URL, transport=_SlowTransport()) as http,
            anyio.create_task_group() as group,
        ):
            for number in range(FREEZE_CALLS):
                group.start_soon(post, http, number)

    await ours()  # warm-up
    started = time.perf_counter()
    nim_gap = await _heartbeat_during(ours)
    nim_wall = time.perf_counter() - started
    await raw()
    raw_gap = await _heartbeat_during(raw)
    return {"nim": nim_gap, "raw": raw_gap, "nim_wall": nim_wall}


# --- bulk and upload: the existing scripts ----------------------------------------------------


def _bulk_side(side: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(HERE / "bench_bulk.py"), "--side", side],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def part_upload() -> dict[str, Any]:
    import bench_upload_memory as upload

    import nim_async as nim

    async def job() -> dict[str, float]:
        content = bytes(range(256)) * (upload.FILE_BYTES // 256)
        async with nim.NimClient(
            "bench-key",
            "bench-secret",
            base_url=BASE_URL,
            transport=upload._Sink(),
            rate_limits=None,
        ) as client:
            growth = await upload._peak_growth(client, "upload", content)
        return {
            "times": growth / len(content),
            "mb": growth / 1e6,
            "goal": upload.GOAL_TIMES_THE_FILE,
        }

    return anyio.run(job)


# --- the parts and the driver ----------------------------------------------------------------

PARTS: dict[str, Callable[[], Any]] = {
    "local": lambda: anyio.run(part_local),
    "redis": part_redis,
    "aio_burst": lambda: anyio.run(part_aio_burst),
    "aio_pace": lambda: anyio.run(part_aio_pace),
    "retry": lambda: anyio.run(part_retry),
    "real_local": lambda: anyio.run(part_real_local),
    "real_aio": lambda: anyio.run(part_real_aio),
    "cpu_nim": lambda: part_cpu("nim"),
    "cpu_raw": lambda: part_cpu("raw"),
    "memory": part_memory,
    "freeze": lambda: anyio.run(part_freeze),
    "upload": part_upload,
}


def run_part(name: str) -> Any:
    """Run one part in a fresh process; its last stdout line is the JSON result."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--part", name], check=True, capture_output=True, text=True
    ).stdout
    print(f"  {name:<12s} {time.perf_counter() - started:6.1f} s", file=sys.stderr, flush=True)
    return json.loads(out.strip().splitlines()[-1])


RATE_ROWS = [
    ("local", "nim_async LocalLimiter", "nim_async\nLocal"),
    ("redis", f"nim_async RedisLimiter, {PROCESSES} processes", "nim_async\nRedis x3"),
    ("aio_burst", f"httpx + AsyncLimiter({LIMIT}, {WINDOW})", f"aiolimiter\n({LIMIT}, {WINDOW})"),
    (
        "aio_pace",
        f"httpx + AsyncLimiter(1, {WINDOW / LIMIT:g})",
        f"aiolimiter\n(1, {WINDOW / LIMIT:g})",
    ),
    ("retry", "httpx, wait out 416 and retry", "httpx\nretry 416"),
]


def _rate_cells(result: dict[str, Any]) -> list[str]:
    note = f"{result['completed']}/{result['calls']} done in {result['elapsed']:.2f} s"
    return [
        f"{result['share']:.1%}",
        str(result["rate_limited"]),
        f"{result['p50']:.2f} s",
        f"{result['p99']:.2f} s",
        note,
    ]


def _plot(labels: list[str], shares: list[float], blocked: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = ["tab:green" if label.startswith("nim_async") else "tab:grey" for label in labels]
    left.bar(labels, [share * 100 for share in shares], color=colours)
    left.set_ylabel("completed calls, % of the allowed rate")
    left.set_ylim(0, 105)
    left.set_title(f"{BURST_CALLS} sendAttachMsg at once, {LIMIT} per {WINDOW} s")
    for index, share in enumerate(shares):
        left.text(index, share * 100 + 1, f"{share:.0%}", ha="center", fontsize=8)
    right.bar(labels, blocked, color=colours)
    right.set_ylabel("416 answers")
    right.set_title("416 answers (each blocks the action for 5 s)")
    for index, count in enumerate(blocked):
        right.text(index, count, str(count), ha="center", va="bottom", fontsize=8)
    for axis in (left, right):
        axis.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> int:
    started = time.perf_counter()
    print("running (each part in a fresh process):", file=sys.stderr, flush=True)
    results = {}
    for name in ("local", "redis", "aio_burst", "aio_pace", "retry", "real_local", "real_aio"):
        results[name] = run_part(name)
    cpu: dict[str, list[float]] = {"nim": [], "raw": []}
    for _ in range(CPU_ROUNDS):
        for side in ("raw", "nim"):
            cpu[side].append(run_part(f"cpu_{side}")["cpu"])
    bulk = {}
    for side in ("raw_httpx", "nim_async", "journalled"):
        bulk_started = time.perf_counter()
        bulk[side] = _bulk_side(side)
        print(
            f"  bulk {side:<7s} {time.perf_counter() - bulk_started:6.1f} s",
            file=sys.stderr,
            flush=True,
        )
    for name in ("memory", "freeze", "upload"):
        results[name] = run_part(name)

    import bench_bulk

    failures: list[str] = []
    header = ["benchmark", "run", "share of rate", "416", "p50", "p99", "result", "goal"]
    rows: list[list[str]] = []
    labels, shares, blocked = [], [], []
    for key, name, label in RATE_ROWS:
        result = results[key]
        if result is None:
            rows.append(
                [
                    "rate limits, 0.5 s windows",
                    name,
                    "-",
                    "-",
                    "-",
                    "-",
                    "skipped: no redis-server",
                    "",
                ]
            )
            continue
        goal = "0 x 416" if key in ("local", "redis") else ""
        rows.append(["rate limits, 0.5 s windows", name, *_rate_cells(result), goal])
        labels.append(label)
        shares.append(result["share"])
        blocked.append(result["rate_limited"])
        if goal and result["rate_limited"]:
            failures.append(f"{name}: {result['rate_limited']} x 416")
        if goal and result["completed"] != result["calls"]:
            failures.append(f"{name}: {result['calls'] - result['completed']} calls failed")
    real = results["real_local"]
    rows.append(
        [
            "rate limits, real 1 s windows, 20 ms answers",
            f"nim_async LocalLimiter, {REAL_CALLS} sendAttachMsg",
            *_rate_cells(real),
            f">= {REAL_WINDOW_GOAL:.0%}, 0 x 416",
        ]
    )
    if real["share"] < REAL_WINDOW_GOAL:
        # Reported, not failed: the README says what holds it back.
        print(f"goal not met: real 1 s windows at {real['share']:.1%}", file=sys.stderr)
    if real["rate_limited"] or real["completed"] != real["calls"]:
        failures.append(f"real 1 s windows: {real['rate_limited']} x 416")
    rows.append(
        [
            "rate limits, real 1 s windows, 20 ms answers",
            f"httpx + AsyncLimiter(100, 1), {REAL_CALLS} sendAttachMsg",
            *_rate_cells(results["real_aio"]),
            "",
        ]
    )
    nim_cpu, raw_cpu = min(cpu["nim"]), min(cpu["raw"])
    ratio = nim_cpu / raw_cpu
    cpu_met = ratio <= CPU_GOAL
    rows.append(
        [
            "CPU per call",
            f"send_msg x {CPU_CALLS:,} sequential",
            *["-"] * 4,
            f"{ratio:.2f}x raw httpx ({nim_cpu / CPU_CALLS * 1e6:.0f} vs "
            f"{raw_cpu / CPU_CALLS * 1e6:.0f} us/call, best of {CPU_ROUNDS})"
            + ("" if cpu_met else " NOT MET"),
            f"<= {CPU_GOAL:.2f}x" + ("" if ENFORCE_CPU_GOAL else " (not enforced)"),
        ]
    )
    if ENFORCE_CPU_GOAL and not cpu_met:
        failures.append(f"CPU per send_msg {ratio:.2f}x raw httpx")
    raw_bulk = bulk["raw_httpx"]
    for side, name in (("nim_async", "nim_async"), ("journalled", "nim_async + SQLite journal")):
        numbers = bulk[side]
        rows.append(
            [
                f"bulk, {bench_bulk.RECIPIENTS:,} recipients",
                name,
                *["-"] * 4,
                f"CPU {numbers['cpu'] / raw_bulk['cpu']:.2f}x raw httpx "
                f"({numbers['cpu']:.2f} vs {raw_bulk['cpu']:.2f} s), "
                f"peak memory +{numbers['peak_mb']:.1f} MB",
                f"< {bench_bulk.MEMORY_GOAL_MB:.0f} MB",
            ]
        )
        if numbers["peak_mb"] > bench_bulk.MEMORY_GOAL_MB:
            failures.append(f"bulk {name}: peak memory +{numbers['peak_mb']:.1f} MB")
    memory = results["memory"]
    rows.append(
        [
            "memory",
            f"send_msg x {MEMORY_CALLS:,} sequential",
            *["-"] * 4,
            f"peak RSS +{memory[str(MEMORY_CHECKPOINT)]:.1f} MB at {MEMORY_CHECKPOINT:,}, "
            f"+{memory[str(MEMORY_CALLS)]:.1f} MB at {MEMORY_CALLS:,}",
            "flat",
        ]
    )
    freeze = results["freeze"]
    rows.append(
        [
            "event loop",
            f"{FREEZE_CALLS:,} concurrent send_msg, answers after {FREEZE_DELAY * 1000:.0f} ms",
            *["-"] * 4,
            f"longest {HEARTBEAT * 1000:.0f} ms heartbeat gap {freeze['nim'] * 1000:.0f} ms "
            f"(raw httpx {freeze['raw'] * 1000:.0f} ms)",
            "",
        ]
    )
    upload = results["upload"]
    rows.append(
        [
            "upload memory",
            "upload of a 15 MB file",
            *["-"] * 4,
            f"peak growth {upload['mb']:.1f} MB, {upload['times']:.2f}x the file",
            f"< {upload['goal']:g}x",
        ]
    )
    if upload["times"] >= upload["goal"]:
        failures.append(f"upload: {upload['times']:.2f}x the file")

    total = time.perf_counter() - started
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    table = "\n".join(lines)
    print(table)
    print(f"\ntotal {total:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench.md").write_text(
        f"# Benchmarks\n\n`python benchmarks/run_all.py`, {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} CPUs, {total:.0f} s in all. Definitions: the docstring of "
        f"benchmarks/run_all.py.\n\n{table}\n"
    )
    _plot(labels, shares, blocked, RESULTS / "bench.png")
    print(f"wrote {RESULTS / 'bench.md'} and {RESULTS / 'bench.png'}")
    if failures:
        print("goals not met: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--part":
        print(json.dumps(PARTS[sys.argv[2]]()))
    elif len(sys.argv) == 6 and sys.argv[1] == "--redis-worker":
        base_url, redis_url, calls, name = sys.argv[2:6]
        anyio.run(redis_worker, base_url, redis_url, int(calls), name)
    else:
        sys.exit(main())
