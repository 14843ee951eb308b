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

RedisLimiter at a network distance (bench_redis_far.py): 3 processes share a
1000 calls/s budget through a proxy that delays Redis 5 ms each way.

Goals (README): no 416 on a nim_async row and every call completed, CPU per
send_msg <= 1.10x raw httpx, and the bulk and upload memory goals of
bench_bulk.py and bench_upload_memory.py (enforced: the run exits 1);
>= 97% of the allowed rate at real 1 s windows and >= 90% with Redis 5 ms
away (reported beside the figure; the README says what holds them back).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_redis_far
import parts_calls
import parts_rates
from bench_common import (
    BURST_CALLS,
    CPU_CALLS,
    CPU_GOAL,
    CPU_ROUNDS,
    ENFORCE_CPU_GOAL,
    FREEZE_CALLS,
    FREEZE_DELAY,
    HEARTBEAT,
    LIMIT,
    MEMORY_CALLS,
    MEMORY_CHECKPOINT,
    PROCESSES,
    REAL_CALLS,
    REAL_WINDOW_GOAL,
    REDIS_FAR_GOAL,
    RESULTS,
    WINDOW,
)

# --- the parts and the driver ----------------------------------------------------------------

PARTS: dict[str, Callable[[], Any]] = {
    "local": lambda: anyio.run(parts_rates.part_local),
    "redis": parts_rates.part_redis,
    "redis_far": parts_rates.part_redis_far,
    "aio_burst": lambda: anyio.run(parts_rates.part_aio_burst),
    "aio_pace": lambda: anyio.run(parts_rates.part_aio_pace),
    "retry": lambda: anyio.run(parts_rates.part_retry),
    "real_local": lambda: anyio.run(parts_rates.part_real_local),
    "real_aio": lambda: anyio.run(parts_rates.part_real_aio),
    "cpu_nim": lambda: parts_calls.part_cpu("nim"),
    "cpu_raw": lambda: parts_calls.part_cpu("raw"),
    "memory": parts_calls.part_memory,
    "freeze": lambda: anyio.run(parts_calls.part_freeze),
    "upload": parts_calls.part_upload,
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
    for name in (
        "local",
        "redis",
        "aio_burst",
        "aio_pace",
        "retry",
        "real_local",
        "real_aio",
        "redis_far",
    ):
        results[name] = run_part(name)
    cpu: dict[str, list[float]] = {"nim": [], "raw": []}
    for _ in range(CPU_ROUNDS):
        for side in ("raw", "nim"):
            cpu[side].append(run_part(f"cpu_{side}")["cpu"])
    bulk = {}
    for side in ("raw_httpx", "nim_async", "journalled"):
        bulk_started = time.perf_counter()
        bulk[side] = parts_calls._bulk_side(side)
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
    far = results["redis_far"]
    far_row = "rate limits, 1000 calls per 1 s window, Redis 5 ms away each way"
    far_run = (
        f"nim_async RedisLimiter, {bench_redis_far.PROCESSES} processes x "
        f"{bench_redis_far.CALLS_PER_PROCESS:,} sendAttachMsg, 20 ms answers"
    )
    if far is None:
        rows.append([far_row, far_run, *["-"] * 4, "skipped: no redis-server", ""])
    else:
        met = far["share"] >= REDIS_FAR_GOAL
        rows.append(
            [
                far_row,
                far_run,
                *_rate_cells(far)[:-1],
                _rate_cells(far)[-1] + ("" if met else " NOT MET"),
                f">= {REDIS_FAR_GOAL:.0%}, 0 x 416",
            ]
        )
        if far["rate_limited"] or far["completed"] != far["calls"]:
            failures.append(f"Redis 5 ms away: {far['rate_limited']} x 416")
        if not met:
            # Reported, not failed: the README says what holds it back.
            print(f"goal not met: Redis 5 ms away at {far['share']:.1%}", file=sys.stderr)
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
    else:
        sys.exit(main())
