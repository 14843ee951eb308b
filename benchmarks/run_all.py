"""Every benchmark in one run: one table, each goal beside its figure; exit 1 if one is missed.

Run: ``nox -s bench`` or ``python benchmarks/run_all.py`` (extras ``emulator``,
``redis`` and ``bench``: aiohttp, aiolimiter and matplotlib; redis-server on
PATH for the RedisLimiter rows, which are skipped without it). The table is
printed and written to ``benchmarks/results/bench.md``, with a plot in
``benchmarks/results/bench.png``, whether or not every goal is met.

One section alone: ``python benchmarks/run_all.py --only cpu`` (or
``--only cpu,stall``; sections: ``SECTIONS``) prints that section's rows and
exits 1 if one of its goals is missed, writing nothing. One part alone,
printing its JSON: ``python benchmarks/run_all.py --part cpu_nim_async``.

Every measurement runs in a fresh process (``--part NAME``, whose last
stdout line is its JSON result); this process only collects and reports.
Every row that measures a rate, CPU, a stall or memory talks HTTP over
loopback sockets to a server in another process (bench_servers.py):

- the *fixed-answer server*: raw asyncio, no framework, answers every
  request ``{"code": 200, "data": {...}}`` with a ``Date`` header, at once or
  after a set delay; it costs the client nothing a real server would not;
- the *served emulator*: ``NimEmulator`` under uvicorn, with the default rate
  limits (time-scaled where a row says so) checked by the server itself,
  which answers a breach 416 and counts it.

The clients (bench_clients.py): *raw httpx* (``httpx.AsyncClient`` posting a
signed NIM form), *raw aiohttp* (``aiohttp.ClientSession`` posting the same
bytes) and *nim_async* (``NimClient`` with its default transport), each with
a pool of 100 connections kept alive. A row named "(in-process)" does not go
over sockets.

The rows:

1. CPU per call, at 1, 10 and 100 calls in flight: ``sendAttachMsg`` to the
   fixed-answer server (answers at once). Per client and number in flight: a
   fresh client, 300 calls to warm up (the connections open), then 3,000
   calls with that many in flight (each worker starts its next call when one
   ends); the client process's CPU time (``time.process_time()``, every
   thread) / 3,000. Each client runs in its own process, in turn, 3 rounds;
   the best round counts. nim_async uses ``rate_limits=None``.
   Goal: nim_async <= 1.30 x raw aiohttp at each number in flight.
2. Event-loop stall: 2,000 ``sendAttachMsg`` started at once (a task group)
   through a fresh client, the fixed-answer server answering each 50 ms after
   it arrived; a task sleeping 10 ms in a loop beats meanwhile, and the row
   shows the longest gap between two beats, from the first call's start to
   the last answer. A run of 200 calls warms up first. A run still going
   after 10 s is stopped there (raw httpx: its pool's work per request and
   per cancellation grows with its waiters) and its gap so far, the one in
   progress included, is shown. Goal: nim_async <= 50 ms.
3. Rate limits, 0.5 s windows: 600 ``sendAttachMsg`` started at once against
   the served emulator with the limits scaled by 0.5 (100 calls per 0.5 s,
   blocked 5 s after a breach), through five strategies: nim_async with a
   ``LocalLimiter``; nim_async with a ``RedisLimiter`` in 3 processes x 200
   calls (a redis-server of our own); raw httpx behind
   ``aiolimiter.AsyncLimiter(100, 0.5)``; behind ``AsyncLimiter(1, 0.005)``
   (one call every 5 ms); with no limiter. A raw client, as NIM's official
   SDKs do, waits out the block after a 416 and retries (through its limiter
   again), at most 30 attempts; a raw run still going after 30 s is cut off
   (its calls not completed). Before its burst, each client makes 100 calls
   at once (every connection the burst uses opens) and waits until their
   window has passed, at the client and at the server. Goal: no 416 and
   every call completed on the nim_async rows.
4. Rate limits, real 1 s windows: 1,000 ``sendAttachMsg`` started at once
   against the served emulator with ``RateLimits.default()`` (100 calls/s,
   blocked 10 s) and every answer 20 ms late; nim_async with a
   ``LocalLimiter``, and raw httpx and raw aiohttp behind
   ``AsyncLimiter(100, 1)`` (retrying 416s as in 3, cut off after 30 s).
   Goal: nim_async >= 97% of the ideal, no 416, every call completed.
5. RedisLimiter at a network distance (bench_redis_far.py): 3 processes x
   2,000 ``sendAttachMsg`` share a 1,000 calls/s budget in Redis through a
   proxy that delays Redis 5 ms each way; the fixed-answer server answers
   after 20 ms and notes each arrival, from which the 416 a strict server
   would answer are counted. Goal: >= 90% of the ideal, no 416, all completed.
6. Cancelling queued waiters (in-process; parts_cancel.py): 10,000, 20,000
   and 40,000 tasks queued for a ``LocalLimiter`` slot are cancelled at once;
   the time until every one has left, beside the same number of bare
   sleeping tasks cancelled (the event loop's own share). Goal: 40,000 in
   under 1 s.
7. Memory: 50,000 sequential ``sendAttachMsg`` through one nim_async client
   to the fixed-answer server, after 1,000 to warm up: peak RSS (VmHWM)
   growth over the RSS before the first measured call, at call 10,000 and
   call 50,000. Goal, "flat": the peak grows < 5 MB from call 10,000 to
   call 50,000 (a leak of 128 bytes a call would reach it).
8. Bulk: ``send_batch_msg`` to 1,000,000 recipients from an async generator
   (chunks of 500, 4 in flight) to the fixed-answer server, beside raw
   aiohttp and raw httpx doing the same by hand (bench_bulk.py): client CPU
   time and peak RSS growth. Goal: peak growth < 80 MB on the nim_async rows.
9. Upload memory: ``upload`` of a 15 MB file (base64 in a form field) to the
   fixed-answer server: peak growth traced by tracemalloc
   (bench_upload_memory.py). Goal: < 3x the file.

"share" on a rate row is the ideal time over the elapsed time, the elapsed
time running from the first call's start to the last answer. The ideal is
what the safe rule (a slot held until ``per`` after its answer, which keeps
every server window safe whatever the latency) allows for the completed
calls: each full window but the last costs ``per`` plus the server's answer
delay, the last one answer delay (1,000 calls at 100/s with 20 ms answers:
9 x 1.02 s + 0.02 s = 9.20 s). p50 and p99 run from a call's start to its
answer, waits and retries included.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_bulk
import bench_redis_far
import bench_upload_memory
import parts_calls
import parts_rates
from bench_clients import CLIENTS
from bench_common import (
    BURST_CALLS,
    CANCEL_GOAL,
    CPU_CALLS,
    CPU_GOAL,
    CPU_IN_FLIGHT,
    CPU_ROUNDS,
    HEARTBEAT,
    LIMIT,
    MEMORY_CALLS,
    MEMORY_CHECKPOINT,
    MEMORY_FLAT_MB,
    PROCESSES,
    REAL_CALLS,
    REAL_LATENCY,
    REAL_WINDOW_GOAL,
    REDIS_FAR_GOAL,
    RESULTS,
    STALL_CALLS,
    STALL_DEADLINE,
    STALL_DELAY,
    STALL_GOAL,
    WINDOW,
)

# parts_cancel.py came with the limiter's cancellation work: its row is "not run" without it.
HAS_CANCEL = importlib.util.find_spec("parts_cancel") is not None

Row = list[str]
HEADER = ["benchmark", "run", "figure", "goal", "met", "details"]
NAMES = {"httpx": "raw httpx", "aiohttp": "raw aiohttp", "nim_async": "nim_async"}


def _cancel_part() -> Any:
    import parts_cancel

    return parts_cancel.part_cancel()


PARTS: dict[str, Callable[[], Any]] = {
    **{f"cpu_{name}": functools.partial(parts_calls.part_cpu, name) for name in CLIENTS},
    **{f"stall_{name}": functools.partial(parts_calls.part_stall, name) for name in CLIENTS},
    "local": parts_rates.part_local,
    "redis": parts_rates.part_redis,
    "aio_burst": parts_rates.part_aio_burst,
    "aio_pace": parts_rates.part_aio_pace,
    "retry": parts_rates.part_retry,
    "real_local": parts_rates.part_real_local,
    "real_httpx": parts_rates.part_real_httpx,
    "real_aiohttp": parts_rates.part_real_aiohttp,
    "redis_far": parts_rates.part_redis_far,
    "cancel": _cancel_part,
    "memory": parts_calls.part_memory,
    **{f"bulk_{side}": functools.partial(bench_bulk.measure, side) for side in bench_bulk.SIDES},
    "upload": parts_calls.part_upload,
}


def run_part(name: str) -> Any:
    """Run one part in a fresh process; its JSON result, or ``{"error": ...}`` if it failed."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--part", name], capture_output=True, text=True, check=False
    )
    print(f"  {name:<18s} {time.perf_counter() - started:6.1f} s", file=sys.stderr, flush=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        print(f"  {name} failed:\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
        return {"error": tail[0][:200]}
    return json.loads(lines[-1])


def _failed(result: Any) -> str | None:
    return result["error"] if isinstance(result, dict) and "error" in result else None


class Report:
    """The rows of the table and the goals missed, built section by section."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.missed: list[str] = []
        self.plot: dict[str, Any] = {}

    def add(
        self, benchmark: str, run: str, figure: str, goal: str, met: bool | None, details: str
    ) -> None:
        """One row; ``met`` None: no goal on this row."""
        mark = "" if met is None else ("yes" if met else "**NO**")
        self.rows.append([benchmark, run, figure, goal, mark, details])
        if met is False:
            self.missed.append(f"{benchmark} / {run}: {figure} (goal {goal})")

    def error(self, benchmark: str, run: str, goal: str, message: str) -> None:
        self.add(benchmark, run, "error", goal, False, message.replace("|", "/"))


# --- the sections ------------------------------------------------------------------------------


def cpu(report: Report) -> None:
    seconds: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENTS}
    for _ in range(CPU_ROUNDS):
        for name in CLIENTS:
            seconds[name].append(run_part(f"cpu_{name}"))
    best: dict[str, dict[int, float]] = {}
    for name, rounds in seconds.items():
        good = [result for result in rounds if not _failed(result)]
        best[name] = {n: min(r[str(n)] for r in good) for n in CPU_IN_FLIGHT} if good else {}
    report.plot["cpu"] = best
    details = f"client CPU / call, best of {CPU_ROUNDS} x {CPU_CALLS:,} calls"
    goal = f"<= {CPU_GOAL:.2f}x raw aiohttp"
    for in_flight in CPU_IN_FLIGHT:
        benchmark = f"CPU per call, sendAttachMsg, {in_flight} in flight"
        for name in CLIENTS:
            if not best[name]:
                error = str(next(_failed(r) for r in seconds[name] if _failed(r)))
                report.error(benchmark, NAMES[name], goal if name == "nim_async" else "", error)
                continue
            us = best[name][in_flight] * 1e6
            if name != "nim_async":
                report.add(benchmark, NAMES[name], f"{us:,.0f} µs", "", None, details)
                continue
            if not best["aiohttp"]:
                report.add(benchmark, NAMES[name], f"{us:,.0f} µs", goal, False, "no baseline")
                continue
            ratio = best[name][in_flight] / best["aiohttp"][in_flight]
            report.add(
                benchmark,
                NAMES[name],
                f"{us:,.0f} µs = {ratio:.2f}x raw aiohttp",
                goal,
                ratio <= CPU_GOAL,
                details,
            )


def stall(report: Report) -> None:
    benchmark = (
        f"event-loop stall, {STALL_CALLS:,} sendAttachMsg at once, "
        f"answers after {STALL_DELAY * 1000:.0f} ms"
    )
    for name in ("nim_async", "httpx", "aiohttp"):
        result = run_part(f"stall_{name}")
        goal = f"<= {STALL_GOAL * 1000:.0f} ms" if name == "nim_async" else ""
        if error := _failed(result):
            report.error(benchmark, NAMES[name], goal, error)
            continue
        gap, at_least = result["gap"], ""
        if result["answered"] == result["calls"]:
            details = f"{result['calls']:,} answered in {result['wall']:.2f} s"
        else:
            # The gap in progress when the run was stopped goes on past it.
            at_least = ">= "
            details = (
                f"cut off at {STALL_DEADLINE:.0f} s: {result['answered']:,}/"
                f"{result['calls']:,} answered"
            )
        report.add(
            benchmark,
            NAMES[name],
            f"longest {HEARTBEAT * 1000:.0f} ms heartbeat gap {at_least}{gap * 1000:,.0f} ms",
            goal,
            gap <= STALL_GOAL if goal else None,
            details,
        )


def _rate_details(result: dict[str, Any]) -> str:
    return (
        f"{result['completed']}/{result['calls']} done in {result['elapsed']:.2f} s "
        f"(ideal {result['ideal']:.2f} s); p50 {result['p50']:.2f} s, p99 {result['p99']:.2f} s"
    )


def _rate_row(
    report: Report, benchmark: str, run: str, result: Any, share_goal: float | None, goal: bool
) -> None:
    """A rate row; with ``goal``: no 416 and every call completed, and ``share_goal`` if given."""
    goal_text = ""
    if goal:
        goal_text = (f">= {share_goal:.0%}, " if share_goal else "") + "0 x 416, all done"
    if result is None:
        report.add(benchmark, run, "skipped: no redis-server on PATH", goal_text, None, "")
        return
    if error := _failed(result):
        report.error(benchmark, run, goal_text, error)
        return
    met = None
    if goal:
        met = result["rate_limited"] == 0 and result["completed"] == result["calls"]
        met = met and (share_goal is None or result["share"] >= share_goal)
    report.add(
        benchmark,
        run,
        f"share {result['share']:.1%}, {result['rate_limited']} x 416",
        goal_text,
        met,
        _rate_details(result),
    )


def rates(report: Report) -> None:
    benchmark = f"rate limits, 0.5 s windows, {BURST_CALLS} sendAttachMsg at once"
    pace = WINDOW / LIMIT
    strategies = [
        ("local", "nim_async LocalLimiter", "nim_async\nLocal", True),
        ("redis", f"nim_async RedisLimiter, {PROCESSES} processes", "nim_async\nRedis x3", True),
        ("aio_burst", f"httpx + AsyncLimiter({LIMIT}, {WINDOW})", "aiolimiter\n(100, 0.5)", False),
        ("aio_pace", f"httpx + AsyncLimiter(1, {pace:g})", f"aiolimiter\n(1, {pace:g})", False),
        ("retry", "httpx, wait out 416 and retry", "httpx\nretry 416", False),
    ]
    bars = []
    for key, run, label, goal in strategies:
        result = run_part(key)
        _rate_row(report, benchmark, run, result, None, goal)
        if result is not None and not _failed(result):
            bars.append((label, result["share"], result["rate_limited"]))
    report.plot["rates"] = bars


def real(report: Report) -> None:
    benchmark = (
        f"rate limits, real 1 s windows, {REAL_CALLS:,} sendAttachMsg at once, "
        f"answers after {REAL_LATENCY * 1000:.0f} ms"
    )
    _rate_row(
        report, benchmark, "nim_async LocalLimiter", run_part("real_local"), REAL_WINDOW_GOAL, True
    )
    for key, run in (("real_aiohttp", "aiohttp"), ("real_httpx", "httpx")):
        result = run_part(key)
        _rate_row(report, benchmark, f"raw {run} + AsyncLimiter({LIMIT}, 1)", result, None, False)


def redis_far(report: Report) -> None:
    benchmark = "rate limits, 1,000 calls per 1 s window, Redis 5 ms away each way"
    run = (
        f"nim_async RedisLimiter, {bench_redis_far.PROCESSES} processes x "
        f"{bench_redis_far.CALLS_PER_PROCESS:,} sendAttachMsg, 20 ms answers"
    )
    _rate_row(report, benchmark, run, run_part("redis_far"), REDIS_FAR_GOAL, True)


def cancel(report: Report) -> None:
    benchmark = "cancelling queued waiters (in-process)"
    run = "nim_async LocalLimiter, queued for one slot, cancelled at once"
    goal = f"largest < {CANCEL_GOAL:g} s"
    if not HAS_CANCEL:
        report.add(benchmark, run, "not run: benchmarks/parts_cancel.py missing", goal, None, "")
        return
    result = run_part("cancel")
    if error := _failed(result):
        report.error(benchmark, run, goal, error)
        return
    seconds = {int(queued): took for queued, took in result["seconds"].items()}
    largest = max(seconds)
    details = ", ".join(f"{queued:,}: {took:.3f} s" for queued, took in sorted(seconds.items()))
    if floor := result.get("floor_seconds"):
        # The same number of bare tasks cancelled: what the event loop alone costs.
        details += f"; bare tasks, {largest:,}: {floor[str(largest)]:.3f} s"
    report.add(
        benchmark,
        run,
        f"{largest:,} in {seconds[largest]:.3f} s",
        goal,
        seconds[largest] < CANCEL_GOAL,
        details,
    )


def memory(report: Report) -> None:
    benchmark = f"memory, {MEMORY_CALLS:,} sequential sendAttachMsg"
    goal = f"flat: < {MEMORY_FLAT_MB:g} MB more from {MEMORY_CHECKPOINT:,} to {MEMORY_CALLS:,}"
    result = run_part("memory")
    if error := _failed(result):
        report.error(benchmark, "nim_async", goal, error)
        return
    at_checkpoint, at_end = result[str(MEMORY_CHECKPOINT)], result[str(MEMORY_CALLS)]
    report.add(
        benchmark,
        "nim_async",
        f"+{at_end - at_checkpoint:.2f} MB from call {MEMORY_CHECKPOINT:,} to {MEMORY_CALLS:,}",
        goal,
        at_end - at_checkpoint < MEMORY_FLAT_MB,
        f"peak RSS +{at_checkpoint:.2f} MB at {MEMORY_CHECKPOINT:,}, "
        f"+{at_end:.2f} MB at {MEMORY_CALLS:,}",
    )


def bulk(report: Report) -> None:
    benchmark = f"bulk, {bench_bulk.RECIPIENTS:,} recipients, chunks of {bench_bulk.CHUNK}"
    results = {side: run_part(f"bulk_{side}") for side in bench_bulk.SIDES}
    baseline = results["raw_aiohttp"]
    names = {
        "raw_aiohttp": "raw aiohttp",
        "raw_httpx": "raw httpx",
        "nim_async": "nim_async",
        "journalled": "nim_async + SQLite journal",
    }
    for side, name in names.items():
        numbers = results[side]
        ours = side in ("nim_async", "journalled")
        goal = f"< {bench_bulk.MEMORY_GOAL_MB:.0f} MB" if ours else ""
        if error := _failed(numbers):
            report.error(benchmark, name, goal, error)
            continue
        details = f"client CPU {numbers['cpu']:.2f} s"
        if side != "raw_aiohttp" and not _failed(baseline):
            details += f" = {numbers['cpu'] / baseline['cpu']:.2f}x raw aiohttp"
        report.add(
            benchmark,
            name,
            f"peak RSS +{numbers['peak_mb']:.1f} MB",
            goal,
            numbers["peak_mb"] < bench_bulk.MEMORY_GOAL_MB if ours else None,
            f"{details}, wall {numbers['wall']:.2f} s",
        )


def upload(report: Report) -> None:
    benchmark = "upload memory, a 15 MB file"
    goal = f"< {bench_upload_memory.GOAL_TIMES_THE_FILE:g}x the file"
    result = run_part("upload")
    if error := _failed(result):
        report.error(benchmark, "nim_async upload", goal, error)
        return
    report.add(
        benchmark,
        "nim_async upload",
        f"peak growth {result['mb']:.1f} MB = {result['times']:.2f}x the file",
        goal,
        result["times"] < result["goal"],
        "traced by tracemalloc; base64 in a form field",
    )


SECTIONS: dict[str, Callable[[Report], None]] = {
    "cpu": cpu,
    "stall": stall,
    "rates": rates,
    "real": real,
    "redis_far": redis_far,
    "cancel": cancel,
    "memory": memory,
    "bulk": bulk,
    "upload": upload,
}

# --- the table and the plot --------------------------------------------------------------------


def _table(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def _versions() -> str:
    found = []
    for package in ("nim-async", "aiohttp", "httpx"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} missing")
    return ", ".join([*found, f"Python {platform.python_version()}"])


def _plot(plot: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cpu_axis, share_axis, blocked_axis) = plt.subplots(1, 3, figsize=(16, 4.4))
    best = plot.get("cpu", {})
    width = 0.27
    colours = {"httpx": "tab:grey", "aiohttp": "tab:blue", "nim_async": "tab:green"}
    for index, name in enumerate(CLIENTS):
        if not best.get(name):
            continue
        xs = [n + (index - 1) * width for n in range(len(CPU_IN_FLIGHT))]
        values = [best[name][in_flight] * 1e6 for in_flight in CPU_IN_FLIGHT]
        cpu_axis.bar(xs, values, width, label=NAMES[name], color=colours[name])
    cpu_axis.set_xticks(range(len(CPU_IN_FLIGHT)), [f"{n} in flight" for n in CPU_IN_FLIGHT])
    cpu_axis.set_ylabel("client CPU per call, µs")
    cpu_axis.set_title("CPU per sendAttachMsg over loopback")
    cpu_axis.legend(fontsize=8)
    bars = plot.get("rates", [])
    labels = [label for label, _, _ in bars]
    bar_colours = ["tab:green" if label.startswith("nim_async") else "tab:grey" for label in labels]
    shares = [share * 100 for _, share, _ in bars]
    share_axis.bar(labels, shares, color=bar_colours)
    share_axis.set_ylabel("% of the ideal time")
    share_axis.set_ylim(0, 105)
    share_axis.set_title(f"{BURST_CALLS} sendAttachMsg at once, {LIMIT} per {WINDOW} s")
    for index, share in enumerate(shares):
        share_axis.text(index, share + 1, f"{share:.0f}%", ha="center", fontsize=8)
    blocked = [count for _, _, count in bars]
    blocked_axis.bar(labels, blocked, color=bar_colours)
    blocked_axis.set_ylabel("416 answers")
    blocked_axis.set_title("416 answers (each blocks the action for 5 s)")
    for index, count in enumerate(blocked):
        blocked_axis.text(index, count, str(count), ha="center", va="bottom", fontsize=8)
    for axis in (share_axis, blocked_axis):
        axis.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(only: list[str] | None) -> int:
    started = time.perf_counter()
    # Other work on the machine shares its CPUs with every row: the table says how much.
    load_before = os.getloadavg()[1]
    print("running (each part in a fresh process):", file=sys.stderr, flush=True)
    report = Report()
    for name, section in SECTIONS.items():
        if only is None or name in only:
            section(report)
    total = time.perf_counter() - started
    table = _table(report.rows)
    print(table)
    print(f"\ntotal {total:.0f} s")
    if only is None:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "bench.md").write_text(
            f"# Benchmarks\n\n`python benchmarks/run_all.py`, {time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} CPUs (5-minute load average {load_before:.2f} before the run, "
            f"{os.getloadavg()[1]:.2f} after), {_versions()}, {total:.0f} s in all. "
            f"Definitions: the docstring of benchmarks/run_all.py.\n\n{table}\n"
        )
        _plot(report.plot, RESULTS / "bench.png")
        print(f"wrote {RESULTS / 'bench.md'} and {RESULTS / 'bench.png'}")
    if report.missed:
        print("goals missed:\n  " + "\n  ".join(report.missed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if len(arguments) == 2 and arguments[0] == "--part":
        print(json.dumps(PARTS[arguments[1]]()))
    elif len(arguments) == 2 and arguments[0] == "--only":
        chosen = arguments[1].split(",")
        unknown = [name for name in chosen if name not in SECTIONS]
        if unknown:
            sys.exit(f"unknown sections {unknown}: choose from {', '.join(SECTIONS)}")
        sys.exit(main(chosen))
    elif not arguments:
        sys.exit(main(None))
    else:
        sys.exit(
            "usage: run_all.py [--only SECTION[,SECTION...]] | --part NAME\n"
            f"sections: {', '.join(SECTIONS)}"
        )
