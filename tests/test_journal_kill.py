"""A journalled job's process killed with SIGKILL at random moments, then resumed:
every recipient is delivered exactly once, except those of the chunks the resumed
result reports as may-have-been-sent, which are at most the chunks in flight."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._journal_worker import BATCH_SIZE, MAX_CONCURRENCY, journal_of, recipients
from ._support import APP_KEY, APP_SECRET, free_port, listens_soon, make_client

ACTION = "msg/sendBatchAttachMsg"
TRIALS = 20
COUNT = 400  # 20 chunks of 20
ROOT = Path(__file__).resolve().parent.parent


def _start(base_url: str, journal: str, prefix: str) -> subprocess.Popen[str]:
    """A worker for one run, importing while the test checks the run before it."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests._journal_worker", base_url, journal, prefix, str(COUNT)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _kill_a_run(worker: subprocess.Popen[str], rng: random.Random) -> None:
    """Let ``worker`` start its job, and SIGKILL it at a random moment of it."""
    with worker:
        try:
            assert worker.stdout is not None
            assert worker.stdin is not None
            assert worker.stdout.readline().strip() == "ready"
            worker.stdin.write("go\n")
            worker.stdin.flush()
            time.sleep(rng.uniform(0.0, 0.3))  # the whole job takes about 0.3 s
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)


@contextlib.contextmanager
def _workers(
    base_url: str, journal_for: Callable[[int], str], prefix: str
) -> Iterator[Callable[[int], subprocess.Popen[str]]]:
    """Each trial's worker; the next trial's starts (imports) while this one runs and is
    checked. Any left running at the end are killed."""
    started: list[subprocess.Popen[str]] = []

    def worker(trial: int) -> subprocess.Popen[str]:
        while len(started) < min(trial + 2, TRIALS):
            number = len(started)
            started.append(_start(base_url, journal_for(number), f"{prefix}{number}"))
        return started[trial]

    try:
        yield worker
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def _resume(base_url: str, journal: str, prefix: str) -> nim.BatchResult:
    async def run() -> nim.BatchResult:
        async with make_client(base_url=base_url, batch_size=BATCH_SIZE) as client:
            return await client.send_batch_attach_msg(
                "alice",
                recipients(prefix, COUNT),
                "x",
                max_concurrency=MAX_CONCURRENCY,
                job=nim.BatchJob(journal_of(journal)),
            )

    return anyio.run(run)


def _check(emulator: NimEmulator, prefix: str, result: nim.BatchResult) -> bool:
    """Assert exactly-once; return whether the kill landed mid-job (some chunks replayed)."""
    delivered = Counter(m.to for m in emulator.messages if m.to.startswith(f"{prefix}-"))
    maybe_chunks = [chunk for chunk in result.failed if chunk.may_have_been_sent]
    maybe = {accid for chunk in maybe_chunks for accid in chunk.accids}
    assert len(maybe_chunks) <= MAX_CONCURRENCY, "more than the chunks in flight"
    assert len(maybe_chunks) == len(result.failed), "a surely-unsent chunk was left unsent"
    for accid in recipients(prefix, COUNT):
        if accid in maybe:
            assert delivered[accid] <= 1, f"{accid} delivered twice"
        else:
            assert delivered[accid] == 1, f"{accid} delivered {delivered[accid]} times"
    chunks = COUNT // BATCH_SIZE
    return 0 < result.calls + len(maybe_chunks) < chunks


def _trials(
    base_url: str,
    emulator: NimEmulator,
    journal_for: Callable[[int], str],
    prefix: str,
    between: Callable[[], object] = lambda: None,
) -> None:
    """TRIALS runs, each killed, then ``between()``, then resumed and checked."""
    rng = random.Random(20261128)  # the kill moments differ, and are the same every run
    mid_job = 0
    with _workers(base_url, journal_for, prefix) as worker:
        for trial in range(TRIALS):
            _kill_a_run(worker(trial), rng)
            between()
            result = _resume(base_url, journal_for(trial), f"{prefix}{trial}")
            mid_job += _check(emulator, f"{prefix}{trial}", result)
    # The property holds for every kill; some must have cut a job short to test it.
    assert mid_job >= 3


@pytest.mark.slow
def test_sqlite_journal_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    """Twenty kills over loopback against the emulator on a port, each resumed."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.04, ACTION)
    with emulator.serve() as base_url:
        _trials(base_url, emulator, lambda trial: f"sqlite:{tmp_path / f'job{trial}.sqlite'}", "t")


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A redis-server with an fsync-always append-only file, and a way to kill and restart it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH (.ci/run installs it)")
    port = free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(tmp_path),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]
    process: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        if process:
            os.kill(process[-1].pid, signal.SIGKILL)
            process[-1].wait(10)
        process.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        if not listens_soon(port, seconds=10, interval=0.01):
            pytest.fail("redis-server did not start")
        return f"redis://127.0.0.1:{port}/0"

    try:
        yield start
    finally:
        for running in process:
            running.kill()
            running.wait(10)


@pytest.mark.redis
@pytest.mark.slow
def test_redis_journal_survives_sigkill_and_a_redis_restart(
    restartable_redis: Callable[[], str],
) -> None:
    """The same with the journal in Redis, and Redis itself killed and restarted each time."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.04, ACTION)
    url = restartable_redis()
    with emulator.serve() as base_url:
        # SIGKILL Redis too after each kill; its append-only file brings it back.
        _trials(
            base_url, emulator, lambda trial: f"redis:{url}#job-{trial}", "r", restartable_redis
        )
