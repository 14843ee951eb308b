"""One runner per journal, across real processes: a second runner is refused before it
sends anything, a killed runner's hold dies with it (SQLite) or lapses (Redis), and a
journal written for another app key is refused."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import anyio
import pytest

import nim_async as nim
from nim_async._journal import ChunkRecord
from nim_async.testing import NimEmulator

from ._journal_worker import BATCH_SIZE, MAX_CONCURRENCY, REDIS_LEASE, recipients
from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

ACTION = "msg/sendBatchAttachMsg"
COUNT = 400  # 20 chunks of 20
ROOT = Path(__file__).resolve().parent.parent


_STARTED: list[subprocess.Popen[str]] = []
# Each worker's stderr, by pid: shown when a worker ends without a word.
_ERRORS: dict[int, IO[bytes]] = {}


@pytest.fixture(autouse=True)
def _no_worker_left() -> Iterator[None]:
    """A test that fails part way leaves no worker running (or frozen) behind it."""
    yield
    while _STARTED:
        worker = _STARTED.pop()
        if worker.poll() is None:
            worker.send_signal(signal.SIGCONT)
            worker.kill()
        worker.communicate(timeout=30)
    while _ERRORS:
        _ERRORS.popitem()[1].close()


def _worker(
    base_url: str, journal: str, prefix: str, app_key: str = APP_KEY
) -> subprocess.Popen[str]:
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the test ends)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests._journal_worker",
            base_url,
            journal,
            prefix,
            str(COUNT),
            app_key,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        # To a file, not a pipe: a worker that is never read cannot block on it.
        stderr=errors,
        text=True,
    )
    _ERRORS[worker.pid] = errors
    _STARTED.append(worker)
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    return worker


def _finish(worker: subprocess.Popen[str]) -> str:
    """The worker's last line, once it has ended; its stderr when it printed nothing."""
    out, _ = worker.communicate(timeout=60)
    lines = out.strip().splitlines()
    if lines:
        return lines[-1]
    return f"no output, exit {worker.returncode}; stderr: {_stderr(worker)}"


def _stderr(worker: subprocess.Popen[str]) -> str:
    errors = _ERRORS[worker.pid]
    errors.seek(0)
    return errors.read().decode(errors="replace")[-3000:]


def _sent_by_then(emulator: NimEmulator, prefix: str, at_least: int) -> None:
    deadline = time.monotonic() + 30
    while sum(m.to.startswith(f"{prefix}-") for m in emulator.messages) < at_least:
        assert time.monotonic() < deadline, "the first runner never got going"
        time.sleep(0.01)


def _deliveries(emulator: NimEmulator, prefix: str) -> Counter[str]:
    return Counter(m.to for m in emulator.messages if m.to.startswith(f"{prefix}-"))


def test_a_second_runner_on_an_sqlite_journal_sends_nothing(tmp_path: Path) -> None:
    """The first runner is frozen (SIGSTOP) holding the journal: a second process gets
    JournalLocked and sends nothing; the first, thawed, finishes; nobody gets two."""
    journal = f"sqlite:{tmp_path / 'job.sqlite'}"
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.3, ACTION)  # the job lasts 1.5 s: it is frozen long before its end
    with emulator.serve() as base_url:
        first = _worker(base_url, journal, "p")
        _sent_by_then(emulator, "p", BATCH_SIZE)
        first.send_signal(signal.SIGSTOP)
        try:
            calls = len(emulator.calls)
            second = _worker(base_url, journal, "p")
            assert _finish(second) == "error JournalLocked"
            assert second.returncode == 3
            # Only the first runner's requests already on their way may land meanwhile
            # (one of its chunks had arrived when it was frozen).
            assert len(emulator.calls) - calls <= MAX_CONCURRENCY - 1
        finally:
            first.send_signal(signal.SIGCONT)
        assert _finish(first) == "done"
    assert _deliveries(emulator, "p") == Counter(dict.fromkeys(recipients("p", COUNT), 1))


@pytest.mark.redis
async def test_a_second_runner_on_a_redis_journal_sends_nothing(redis_url: str) -> None:
    """While a runner holds the lease, a second process gets JournalLocked, sends nothing."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    holder = nim.RedisJournal(redis_url, "held-job", lease=30)
    await holder.open("{}")
    try:
        with emulator.serve() as base_url:
            second = _worker(base_url, f"redis:{redis_url}#held-job", "p")
            assert _finish(second) == "error JournalLocked"
    finally:
        await holder.aclose()
    assert emulator.calls == []


@pytest.mark.redis
def test_a_redis_runner_paused_past_its_lease_writes_and_sends_nothing_more(
    redis_url: str,
) -> None:
    """SIGSTOP past the lease: a second runner takes the journal and finishes; the first,
    thawed, is refused at its next write and stops. Nobody gets the message twice."""
    journal = f"redis:{redis_url}#paused-job"
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.3, ACTION)  # the job lasts 1.5 s: it is frozen long before its end
    with emulator.serve() as base_url:
        first = _worker(base_url, journal, "q")
        _sent_by_then(emulator, "q", BATCH_SIZE)
        first.send_signal(signal.SIGSTOP)
        try:
            time.sleep(REDIS_LEASE * 1.5)  # the lease lapses unrenewed
            second = _worker(base_url, journal, "q")
            assert _finish(second) == "done"
        finally:
            first.send_signal(signal.SIGCONT)
        # Refused at its next write, or (its Redis round trips timed out while it was
        # frozen) unable to write at all: either way it stops.
        assert _finish(first) in ("error JournalLocked", "error JournalUnavailable")
    delivered = _deliveries(emulator, "q")
    assert max(delivered.values()) == 1, "a recipient got the message twice"
    # The chunks the first runner had in flight when frozen are maybe-sent to the second.
    assert COUNT - len(delivered) <= MAX_CONCURRENCY * BATCH_SIZE


def _two_resumers_after_a_kill(journal: str) -> None:
    """The first run killed part way; two runners started at once to resume it."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.1, ACTION)
    with emulator.serve() as base_url:
        killed = _worker(base_url, journal, "k")
        _sent_by_then(emulator, "k", 2 * BATCH_SIZE)
        killed.kill()
        _finish(killed)
        time.sleep(REDIS_LEASE + 0.1)  # a Redis lease of the killed runner lapses
        resumers = [_worker(base_url, journal, "k") for _ in range(2)]
        endings = sorted(_finish(worker) for worker in resumers)
    # Both may finish one after the other (the second then finds nothing to do);
    # at the same time, one is refused.
    assert endings in (["done", "done"], ["done", "error JournalLocked"])
    delivered = _deliveries(emulator, "k")
    assert max(delivered.values()) == 1, "a recipient got the message twice"
    # Only the chunks in flight at the kill may be missing (maybe-sent, never guessed).
    assert COUNT - len(delivered) <= MAX_CONCURRENCY * BATCH_SIZE


def test_two_runners_resuming_an_sqlite_journal_at_once_send_nobody_twice(
    tmp_path: Path,
) -> None:
    """The case that sent 300 of 400 recipients twice before journals were held."""
    _two_resumers_after_a_kill(f"sqlite:{tmp_path / 'job.sqlite'}")


@pytest.mark.redis
def test_two_runners_resuming_a_redis_journal_at_once_send_nobody_twice(redis_url: str) -> None:
    """The same with a Redis journal."""
    _two_resumers_after_a_kill(f"redis:{redis_url}#resumed-job")


def test_a_resume_under_another_app_key_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """A journal written with key "staging" says nothing of what "prod" received."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    journal = f"sqlite:{tmp_path / 'job.sqlite'}"
    with emulator.serve() as base_url:
        assert _finish(_worker(base_url, journal, "a")) == "done"
        calls = len(emulator.calls)
        other = _worker(base_url, journal, "a", app_key="prod-app-key")
        assert _finish(other) == "error JournalMismatch"
    assert len(emulator.calls) == calls


async def test_the_mismatch_names_the_app_keys_and_the_service(tmp_path: Path) -> None:
    """The message says what differs: the app key, or the data centre the client calls."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    path = tmp_path / "job.sqlite"
    async with make_client(emulator, batch_size=BATCH_SIZE) as client:
        await client.send_batch_attach_msg("alice", ["a", "b"], "x", job=nim.BatchJob(path))
    async with make_client(emulator, app_key="prod", batch_size=BATCH_SIZE) as client:
        with pytest.raises(nim.JournalMismatch, match="app key 'test-app-key', not 'prod'"):
            await client.send_batch_attach_msg("alice", ["a", "b"], "x", job=nim.BatchJob(path))
    overseas = make_client(emulator, base_url=nim.OVERSEAS_URL, batch_size=BATCH_SIZE)
    async with overseas as client:
        with pytest.raises(nim.JournalMismatch, match="netease-sg"):
            await client.send_batch_attach_msg("alice", ["a", "b"], "x", job=nim.BatchJob(path))
    assert len(emulator.calls) == 1


async def test_an_sqlite_journal_is_held_within_one_process_too(tmp_path: Path) -> None:
    """Two jobs of one process on one file: the second is refused until the first ends."""
    path = tmp_path / "job.sqlite"
    first, second = nim.SqliteJournal(path), nim.SqliteJournal(path)
    await first.open("{}")
    with pytest.raises(nim.JournalLocked, match="held by another runner"):
        await second.open("{}")
    await first.aclose()
    assert await second.open("{}") == {}
    await second.aclose()


@pytest.mark.parametrize(
    "path", ["", "   ", ":memory:", "file::memory:", "file:job?mode=memory&cache=shared"]
)
def test_a_journal_that_would_vanish_with_its_process_is_a_configuration_error(
    path: str,
) -> None:
    """SQLite makes these temporary: a resume from one would send everything again."""
    with pytest.raises(nim.ConfigurationError, match="outlives the process"):
        nim.BatchJob(path)
    with pytest.raises(nim.ConfigurationError, match="outlives the process"):
        nim.SqliteJournal(path)


@pytest.mark.redis
async def test_a_runner_that_lost_its_lease_writes_and_sends_nothing_more(redis_url: str) -> None:
    """Another runner took the journal after the lease lapsed: every write is refused, and
    closing does not release the new holder's lease."""
    journal = nim.RedisJournal(redis_url, "lapsed-job", timeout=0.1, lease=0.4)
    await journal.open("{}")
    await anyio.sleep(0.5)  # paused past its lease, as a stopped process would be
    usurper = nim.RedisJournal(redis_url, "lapsed-job", timeout=0.1, lease=0.4)
    await usurper.open("{}")
    record = ChunkRecord("0" * 32, "sending", at=time.time())
    with pytest.raises(nim.JournalLocked, match="no longer held"):
        await journal.write(0, record)
    await usurper.write(0, record)
    await journal.aclose()
    refused = nim.RedisJournal(redis_url, "lapsed-job", timeout=0.1, lease=0.4)
    with pytest.raises(nim.JournalLocked):
        await refused.open("{}")
    await refused.aclose()
    await usurper.aclose()
    third = nim.RedisJournal(redis_url, "lapsed-job", timeout=0.1, lease=0.4)
    assert await third.open("{}") == {0: record}
    await third.aclose()
