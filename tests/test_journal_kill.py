"""A journalled job's process killed with SIGKILL at random moments, then resumed:
every recipient is delivered exactly once, except those of the chunks the resumed
result reports as may-have-been-sent, which are at most the chunks in flight."""

from __future__ import annotations

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

from ._journal_worker import BATCH_SIZE, MAX_CONCURRENCY, REDIS_LEASE, journal_of, recipients
from ._support import APP_KEY, APP_SECRET, free_port, listens_soon, make_client

ACTION = "msg/sendBatchAttachMsg"
TRIALS = 20
COUNT = 400  # 20 chunks of 20
ROOT = Path(__file__).resolve().parent.parent


def _calls_of(emulator: NimEmulator, prefix: str) -> int:
    return sum(f'"{prefix}-' in call.form.get("toAccids", "") for call in emulator.calls)


def _kill_a_run(
    base_url: str, emulator: NimEmulator, journal: str, prefix: str, rng: random.Random
) -> None:
    """Kill the job once a random number of its calls reached the server, plus a random
    moment: a point in the job itself, however slowly a busy machine starts the worker."""
    arrivals = rng.randint(0, COUNT // BATCH_SIZE - 1)
    with subprocess.Popen(
        [sys.executable, "-m", "tests._journal_worker", base_url, journal, prefix, str(COUNT)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 30
            while _calls_of(emulator, prefix) < arrivals and worker.poll() is None:
                assert time.monotonic() < deadline, "the job never got going"
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.03))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)


def _resume(base_url: str, journal: str, prefix: str) -> tuple[nim.BatchResult, int]:
    """Resume at once; a Redis journal is refused (nothing sent) until the killed lease
    lapses, and a resume stopped by an unreachable journal is resumed again."""

    stops = 1  # the kill

    async def run() -> nim.BatchResult:
        nonlocal stops
        async with make_client(base_url=base_url, batch_size=BATCH_SIZE) as client:
            while True:
                try:
                    result = await client.send_batch_attach_msg(
                        "alice",
                        recipients(prefix, COUNT),
                        "x",
                        max_concurrency=MAX_CONCURRENCY,
                        job=nim.BatchJob(journal_of(journal)),
                    )
                except nim.JournalLocked:
                    assert journal.startswith("redis:"), "an SQLite lock outlived its process"
                    await anyio.sleep(REDIS_LEASE / 5)
                    continue
                if not isinstance(result.stopped, nim.JournalUnavailable):
                    return result
                # A round trip over the tests' short Redis timeout (a busy machine)
                # stops the run, as it should: the next run resumes from the journal.
                assert journal.startswith("redis:"), result.stopped
                stops += 1
                await anyio.sleep(REDIS_LEASE / 5)

    return anyio.run(run), stops


def _check(emulator: NimEmulator, prefix: str, resumed: tuple[nim.BatchResult, int]) -> bool:
    """Assert exactly-once; return whether the kill landed mid-job (some chunks replayed)."""
    result, stops = resumed
    delivered = Counter(m.to for m in emulator.messages if m.to.startswith(f"{prefix}-"))
    maybe_chunks = [chunk for chunk in result.failed if chunk.may_have_been_sent]
    maybe = {accid for chunk in maybe_chunks for accid in chunk.accids}
    # At each stop, at most the chunks then in flight.
    assert len(maybe_chunks) <= MAX_CONCURRENCY * stops, "more than the chunks in flight"
    assert len(maybe_chunks) == len(result.failed), "a surely-unsent chunk was left unsent"
    for accid in recipients(prefix, COUNT):
        if accid in maybe:
            assert delivered[accid] <= 1, f"{accid} delivered twice"
        else:
            assert delivered[accid] == 1, f"{accid} delivered {delivered[accid]} times"
    chunks = COUNT // BATCH_SIZE
    return 0 < result.calls + len(maybe_chunks) < chunks


def _trials(base_url: str, emulator: NimEmulator, journal_for: Callable[[int], str]) -> None:
    rng = random.Random(20261128)  # the kill moments differ, and are the same every run
    mid_job = 0
    for trial in range(TRIALS):
        prefix = f"t{trial}"
        journal = journal_for(trial)
        _kill_a_run(base_url, emulator, journal, prefix, rng)
        mid_job += _check(emulator, prefix, _resume(base_url, journal, prefix))
    # The property holds for every kill; some must have cut a job short to test it.
    assert mid_job >= 3


@pytest.mark.slow
def test_sqlite_journal_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    """Twenty kills over loopback against the emulator on a port, each resumed."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.04, ACTION)
    with emulator.serve() as base_url:
        _trials(base_url, emulator, lambda trial: f"sqlite:{tmp_path / f'job{trial}.sqlite'}")


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
    rng = random.Random(20261129)
    mid_job = 0
    with emulator.serve() as base_url:
        for trial in range(TRIALS):
            prefix = f"r{trial}"
            journal = f"redis:{url}#job-{trial}"
            _kill_a_run(base_url, emulator, journal, prefix, rng)
            restartable_redis()  # SIGKILL Redis too; its append-only file brings it back
            mid_job += _check(emulator, prefix, _resume(base_url, journal, prefix))
    assert mid_job >= 3
