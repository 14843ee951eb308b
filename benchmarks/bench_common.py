"""What every part of benchmarks/run_all.py shares: the settings, signing, the rate summary."""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# Goals (each row's goal cell says which applies; run_all.py exits 1 when one is missed).
CPU_GOAL = 1.30  # nim_async's client CPU per call / raw aiohttp's, at each of CPU_IN_FLIGHT
REAL_WINDOW_GOAL = 0.97  # share of the budget at real 1 s windows
REDIS_FAR_GOAL = 0.90  # share of 1000 calls/s, 3 processes, Redis 5 ms away
STALL_GOAL = 0.05  # seconds: the longest heartbeat gap during STALL_CALLS calls at once
CANCEL_GOAL = 1.0  # seconds to cancel the largest queue of waiters
MEMORY_FLAT_MB = 5.0  # peak RSS growth from call MEMORY_CHECKPOINT to call MEMORY_CALLS

APP_KEY = "bench-app-key"
APP_SECRET = "bench-app-secret"
BASE_URL = "http://nim.bench/nimserver/"  # in-process transports only
WINDOW = 0.5
LIMIT = 100  # sendAttachMsg calls per window
BURST_CALLS = 600
WARM_UP_CALLS = 100  # at once, before a rate burst: every connection the burst uses opens
PROCESSES = 3
REAL_CALLS = 1000
REAL_LATENCY = 0.02
MAX_ATTEMPTS = 30
RAW_DEADLINE = 30.0  # seconds; a raw run still going is cut off (calls not completed)
CPU_IN_FLIGHT = (1, 10, 100)
CPU_CALLS = 3_000  # per measure: one client, one number in flight
CPU_WARM_UP = 300  # per measure, before the clock runs: the connections open
CPU_ROUNDS = 3  # fresh processes per client, in turn; the fastest of each counts
MEMORY_CALLS = 50_000
MEMORY_CHECKPOINT = 10_000
MEMORY_WARM_UP = 1_000
STALL_CALLS = 2_000
STALL_DELAY = 0.05  # seconds from a request's arrival to its answer
STALL_WARM_UP = 200  # calls at once, in a run before the measured one
STALL_DEADLINE = 10.0  # seconds; a run still going is cut off (httpx's pool is quadratic)
HEARTBEAT = 0.01


def signed_headers(app_key: str, secret: str) -> dict[str, str]:
    nonce, now = secrets.token_hex(16), str(int(time.time()))
    return {
        "AppKey": app_key,
        "Nonce": nonce,
        "CurTime": now,
        "CheckSum": hashlib.sha1(f"{secret}{nonce}{now}".encode()).hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ideal_seconds(completed: int, calls: int, per: float, latency: float) -> float:
    """The shortest time the safe rule allows for ``completed`` calls started at once.

    The safe rule holds each slot until ``per`` after its answer, so each full
    window but the last costs ``per`` plus one answer time (``latency``), and
    the last costs one answer time: 1,000 calls at 100 per 1 s with 20 ms
    answers take 9 x (1 s + 20 ms) + 20 ms = 9.20 s.
    """
    windows = -(-completed // calls)
    return (windows - 1) * (per + latency) + latency


def rate_result(
    calls: list[tuple[float, float, bool]],
    rate_limited: int,
    limit: int,
    per: float,
    latency: float,
) -> dict[str, Any]:
    """calls: (start, answered, completed) per call; the summary for the table.

    ``share`` is `ideal_seconds` for the completed calls over the elapsed time,
    from the first call's start to the last answer.
    """
    elapsed = max(end for _, end, _ in calls) - min(start for start, _, _ in calls)
    completed = sum(ok for _, _, ok in calls)
    durations = [end - start for start, end, _ in calls]
    ideal = ideal_seconds(completed, limit, per, latency) if completed else 0.0
    return {
        "calls": len(calls),
        "completed": completed,
        "rate_limited": rate_limited,
        "elapsed": elapsed,
        "ideal": ideal,
        "share": ideal / elapsed,
        "p50": percentile(durations, 0.50),
        "p99": percentile(durations, 0.99),
    }


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM, the peak resident size, to the current size
