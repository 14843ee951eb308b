"""What every part of benchmarks/run_all.py shares: the settings, signing, the rate summary."""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

ENFORCE_CPU_GOAL = True
CPU_GOAL = 1.10
REAL_WINDOW_GOAL = 0.97
REDIS_FAR_GOAL = 0.90  # share of 1000 calls/s, 3 processes, Redis 5 ms away

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


def rate_result(
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
