"""Jobs killed and restarted inside a rate window at NetEase's real limits (the emulator at
scale 1), and a job killed with chunks in flight then resumed with reconciliation: real
processes, real SIGKILL, and the server's own count of what arrived."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._cli_process import start
from ._support import APP_KEY, APP_SECRET

ROOT = Path(__file__).resolve().parent.parent
# 200 chunks of 10 for sendBatchAttachMsg: more than the 120 calls a minute allows.
COUNT = 2000
BUDGET = 120
IN_FLIGHT = 4  # chunks in flight at once, in the CLI and the worker


def _arrived(emulator: NimEmulator, action: str) -> list[int | None]:
    """The codes the server answered to ``action``, in order of arrival."""
    return [call.code for call in emulator.calls if call.action == action]


def _wait_for(emulator: NimEmulator, action: str, calls: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while len(_arrived(emulator, action)) < calls:
        assert time.monotonic() < deadline, f"fewer than {calls} calls of {action} arrived"
        time.sleep(0.01)


def _kill(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate(timeout=30)


def _cli(tmp_path: Path, base_url: str, *arguments: str) -> subprocess.Popen[str]:
    """``nim-async batch`` as a process, its default limiter file in the test's own folder."""
    return start(tmp_path, base_url, "batch", *arguments)


def _restart_inside_the_window(emulator: NimEmulator, start: object) -> None:
    """Kill the first run half way through the minute's budget, start the next at once,
    and watch the window fill: the server never answers 416 and admits the budget."""
    assert callable(start)
    action = "msg/sendBatchAttachMsg"
    first = start()
    _wait_for(emulator, action, BUDGET // 2)
    _kill(first)
    second = start()
    try:
        # Calls in flight at the kill count as made (they may have arrived): the
        # window admits the budget less at most those.
        _wait_for(emulator, action, BUDGET - IN_FLIGHT)
        time.sleep(1.5)  # a restart that forgot the budget would send on now
    finally:
        _kill(second)
    codes = Counter(_arrived(emulator, action))
    assert codes[416] == 0, codes
    assert sum(codes.values()) <= BUDGET, codes


@pytest.mark.slow
def test_the_cli_restarted_inside_a_rate_window_gets_no_416(tmp_path: Path) -> None:
    """The default CLI keeps its windows in a limiter file: the restart waits for them.

    No journal here, so that nothing but the limiter file remembers the first run.
    """
    accids = tmp_path / "to.txt"
    accids.write_text("".join(f"u{n}\n" for n in range(COUNT)))
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=nim.RateLimits.default())
    with emulator.serve() as base_url:
        arguments = ("alice", "x", "--attach", "--to", str(accids), "--batch-size", "10")
        _restart_inside_the_window(emulator, lambda: _cli(tmp_path, base_url, *arguments))


def _worker(base_url: str, journal: str, limiter: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests._journal_worker", base_url, journal, "r"]
    return subprocess.Popen(
        [*command, str(COUNT * 2), APP_KEY, limiter], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("limiter", ["memory", "file"])
def test_a_journalled_job_restarted_inside_a_rate_window_gets_no_416(
    tmp_path: Path, limiter: str
) -> None:
    """An in-memory limiter learns the last minute's calls from the journal; a limiter
    file has them already."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=nim.RateLimits.default())
    journal = f"sqlite:{tmp_path / 'job.sqlite'}"
    spec = "memory" if limiter == "memory" else f"file:{tmp_path / 'limits.sqlite3'}"
    with emulator.serve() as base_url:
        _restart_inside_the_window(emulator, lambda: _worker(base_url, journal, spec))


def test_a_job_killed_with_chunks_in_flight_resumes_with_nobody_twice_and_nobody_lost(
    tmp_path: Path,
) -> None:
    """SIGKILL with chunks in flight; the same command again settles them with the
    service's history and sends the rest: exit 0, every recipient exactly once."""
    accids = [f"u{n}" for n in range(400)]
    source = tmp_path / "to.txt"
    source.write_text("".join(f"{accid}\n" for accid in accids))
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.3, "msg/sendBatchMsg")
    journal = str(tmp_path / "job.sqlite")
    arguments = ["alice", "hello", "--to", str(source), "--journal", journal]
    arguments += ["--batch-size", "20", "--timeout", "0.5"]
    with emulator.serve() as base_url:
        first = _cli(tmp_path, base_url, *arguments)
        deadline = time.monotonic() + 30
        while len(emulator.messages) < 60:  # three chunks carried out, four in flight
            assert time.monotonic() < deadline, "the first run never got going"
            time.sleep(0.005)
        _kill(first)
        resumed = _cli(tmp_path, base_url, *arguments)
        out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    summary = json.loads(out)
    assert (summary["accepted"], summary["maybe_sent"], summary["surely_unsent"]) == (400, 0, 0)
    assert "that may have been sent with the service's history" in err
    assert Counter(m.to for m in emulator.messages) == Counter(dict.fromkeys(accids, 1))
