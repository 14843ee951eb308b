"""LocalLimiter(path=...): one budget in an SQLite file, shared by processes, kept over restarts.

The window arithmetic runs in virtual time (a FakeClock injected as the
file's clock). Real processes then check what the file is for: workers of one
host sharing a budget against the strict emulator, a restart inside a window,
and a day's budget spent by other processes.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import nim_async as nim
from nim_async._base import DEFAULT_MAX_WAIT
from nim_async._limit_file import LimitFile
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client
from ._timing import FakeClock

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
# Real seconds a call that should get its slot may take to get it (generous, for
# busy machines), and how long one that should wait is watched.
PATIENCE = 10.0
MOMENT = 0.05
POLL = 0.001
# Wall-clock-like virtual time, exact in binary.
EPOCH = 1_700_000_000.0

FIVE = nim.ActionLimits((nim.Rate(5, 32),), block=0)
ONE = nim.ActionLimits((nim.Rate(1, 32),), block=0)


def _limiter(path: Path, clock: FakeClock) -> nim.LocalLimiter:
    return nim.LocalLimiter(path=path, clock=clock, poll_interval=POLL)


async def _take(limiter: nim.LocalLimiter, key: str, limits: nim.ActionLimits) -> None:
    """One call that must get its slot now: started and answered at the same instant."""
    with anyio.fail_after(PATIENCE):
        async with limiter.slot(key, limits, hold=1):
            pass


async def _waits(limiter: nim.LocalLimiter, key: str, limits: nim.ActionLimits) -> bool:
    """Whether a call asking now is kept waiting (it gives up after a real MOMENT)."""
    with anyio.move_on_after(MOMENT):
        async with limiter.slot(key, limits, hold=1):
            return False
    return True


async def test_a_fresh_window_admits_its_budget_and_frees_per_after_the_answers(
    tmp_path: Path,
) -> None:
    """Five slots in flight at once, the sixth waits; they free 32 s after their answers."""
    clock = FakeClock(EPOCH)
    limiter = _limiter(tmp_path / "limits.sqlite", clock)
    async with AsyncExitStack() as in_flight:
        with anyio.fail_after(PATIENCE):
            for _ in range(5):
                await in_flight.enter_async_context(limiter.slot("app:w", FIVE, hold=1))
        assert await _waits(limiter, "app:w", FIVE)
        clock.advance(8)
    clock.advance(31.5)
    assert await _waits(limiter, "app:w", FIVE)
    clock.advance(0.5)
    for _ in range(5):
        await _take(limiter, "app:w", FIVE)
    assert await _waits(limiter, "app:w", FIVE)


async def test_a_block_holds_until_its_end_and_a_shorter_one_never_cuts_it(
    tmp_path: Path,
) -> None:
    """block() in the file: no slot before its end, whoever asks."""
    clock = FakeClock(EPOCH)
    limiter = _limiter(tmp_path / "limits.sqlite", clock)
    await limiter.block("app:b", FIVE, 64)
    await limiter.block("app:b", FIVE, 8)
    clock.advance(63.5)
    assert await _waits(limiter, "app:b", FIVE)
    clock.advance(0.5)
    await _take(limiter, "app:b", FIVE)


async def test_a_slot_of_a_process_that_died_in_flight_frees_at_start_plus_hold_plus_per(
    tmp_path: Path,
) -> None:
    """A slot taken and never given back (its process was killed) counts until
    started + hold + per, and not one moment longer."""
    clock = FakeClock(EPOCH)
    path = tmp_path / "limits.sqlite"
    dead = LimitFile(path, clock=clock)
    slot, _ = dead.take("app:dead", ((1, 32.0),), 8.0)
    assert slot is not None
    limiter = _limiter(path, clock)
    clock.advance(39.5)
    assert await _waits(limiter, "app:dead", ONE)
    clock.advance(0.5)
    await _take(limiter, "app:dead", ONE)


async def test_two_limiters_on_one_file_share_one_budget(tmp_path: Path) -> None:
    """Two instances (two processes' worth) on one file: one budget, one block."""
    clock = FakeClock(EPOCH)
    path = tmp_path / "limits.sqlite"
    first, second = _limiter(path, clock), _limiter(path, clock)
    await _take(first, "app:shared", ONE)
    assert await _waits(second, "app:shared", ONE)
    clock.advance(32)
    await _take(second, "app:shared", ONE)
    assert await _waits(first, "app:shared", ONE)
    await first.block("app:shared", ONE, 64)
    clock.advance(32)
    assert await _waits(second, "app:shared", ONE)
    clock.advance(32)
    await _take(second, "app:shared", ONE)


async def test_a_limiter_opened_again_sees_the_calls_of_the_last_window(tmp_path: Path) -> None:
    """A restarted process: the budget it spent before the restart is still spent."""
    clock = FakeClock(EPOCH)
    path = tmp_path / "limits.sqlite"
    for _ in range(5):
        await _take(_limiter(path, clock), "app:restart", FIVE)
    clock.advance(16)
    again = _limiter(path, clock)
    assert await _waits(again, "app:restart", FIVE)
    clock.advance(16)
    await _take(again, "app:restart", FIVE)


async def test_every_rate_is_checked_over_the_calls_of_every_process(tmp_path: Path) -> None:
    """Broadcast's two rates in the file: the day's budget stops what the minute's admits."""
    clock = FakeClock(EPOCH)
    path = tmp_path / "limits.sqlite"
    limits = nim.ActionLimits((nim.Rate(10, 0.5), nim.Rate(3, 64)), block=0)
    for _ in range(3):
        await _take(_limiter(path, clock), "app:two", limits)
        clock.advance(1)
    assert await _waits(_limiter(path, clock), "app:two", limits)
    clock.advance(61)  # the first of the three was answered 64 s ago, the second 63 s ago
    await _take(_limiter(path, clock), "app:two", limits)
    assert await _waits(_limiter(path, clock), "app:two", limits)


async def test_rows_that_count_no_more_are_removed(tmp_path: Path) -> None:
    """The file keeps only the slots and blocks that still count."""
    clock = FakeClock(EPOCH)
    path = tmp_path / "limits.sqlite"
    limiter = _limiter(path, clock)
    for _ in range(5):
        await _take(limiter, "app:prune", FIVE)
    await limiter.block("app:prune", FIVE, 8)
    clock.advance(32)
    await _take(limiter, "app:prune", FIVE)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM slots").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM blocks").fetchone() == (0,)


async def test_a_far_slot_in_the_file_fails_at_once_with_its_distance(tmp_path: Path) -> None:
    """max_wait 30 s (real), the slot 32 s (virtual) away: SlotTimeout at once, retry_after 32;
    a slot 8 s away is waited for."""
    clock = FakeClock(EPOCH)
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limits = nim.RateLimits().with_action("sendAttachMsg", nim.Rate(1, 32))
    limiter = _limiter(tmp_path / "limits.sqlite", clock)
    async with make_client(emulator, rate_limits=limits, limiter=limiter, max_wait=30) as client:
        await client.send_attach_msg("alice", "bob", "first")
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
            await client.send_attach_msg("alice", "bob", "second")
        assert caught.value.retry_after == 32
        clock.advance(24)
        async with anyio.create_task_group() as group:
            group.start_soon(client.send_attach_msg, "alice", "bob", "third")
            await anyio.sleep(MOMENT)
            assert len(emulator.calls) == 1
            clock.advance(8)
    assert [message.attach for message in emulator.messages] == ["first", "third"]


async def test_bounded_calls_queued_behind_a_waiter_fail_at_once(tmp_path: Path) -> None:
    """The front waiter read that the slot is 32 s away: calls queued behind it with 20 s
    to spare fail at once, told 32 s, while an unbounded one keeps its place."""
    clock = FakeClock(EPOCH)
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limits = nim.RateLimits().with_action("sendAttachMsg", nim.Rate(1, 32))
    limiter = _limiter(tmp_path / "limits.sqlite", clock)
    refused: list[float] = []

    async def hasty(client: nim.NimClient) -> None:
        try:
            await client.with_options(max_wait=20).send_attach_msg("alice", "bob", "hasty")
        except nim.SlotTimeout as error:
            refused.append(error.retry_after)

    async with make_client(emulator, rate_limits=limits, limiter=limiter, max_wait=None) as client:
        await client.send_attach_msg("alice", "bob", "first")
        async with anyio.create_task_group() as group:
            group.start_soon(client.send_attach_msg, "alice", "bob", "patient")
            await anyio.sleep(MOMENT)  # the patient call is at the front, waiting
            with anyio.fail_after(PATIENCE):
                for _ in range(3):
                    await hasty(client)
            clock.advance(32)
    assert len(refused) == 3
    assert all(0 < retry_after <= 32 for retry_after in refused)
    assert [message.attach for message in emulator.messages] == ["first", "patient"]


async def test_an_unusable_file_fails_the_call_before_sending(tmp_path: Path) -> None:
    """A path that is a directory, or a file that is no database: LimiterUnavailable, unsent."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not an SQLite file" * 100)
    for path in (tmp_path, garbage):
        async with make_client(
            emulator,
            rate_limits=nim.RateLimits.default(),
            limiter=nim.LocalLimiter(path=path),
        ) as client:
            with pytest.raises(nim.LimiterUnavailable, match="nothing was sent"):
                await client.send_attach_msg("alice", "bob", "x")
    assert emulator.calls == []


async def test_a_file_of_another_layout_is_refused(tmp_path: Path) -> None:
    """A file written by another version is not misread."""
    path = tmp_path / "limits.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(nim.LimiterUnavailable, match="layout 99"):
        async with nim.LocalLimiter(path=path).slot("app:x", ONE, hold=1):
            pass


@pytest.mark.parametrize("path", ["", ":memory:", 42, b"limits.sqlite", 3.5])
def test_a_bad_path_is_a_configuration_error(path: object) -> None:
    """A budget must be in a file that other processes can open."""
    with pytest.raises(nim.ConfigurationError, match="path"):
        nim.LocalLimiter(path=path)  # type: ignore[arg-type]


def test_the_repr_shows_the_path(tmp_path: Path) -> None:
    """Which file holds the budget is what an operator needs to know."""
    path = tmp_path / "limits.sqlite"
    assert repr(nim.LocalLimiter(path=path)) == f"LocalLimiter(path={str(path)!r})"
    assert nim.LocalLimiter(path=path).path == str(path)
    assert repr(nim.LocalLimiter()) == "LocalLimiter()"


async def test_past_calls_fill_an_in_memory_window_until_per_minus_their_age() -> None:
    """note_past_calls: calls answered 10 s and 20 s ago hold slots of a 32 s window until
    22 s and 12 s from now; an age beyond per counts no more."""
    clock = FakeClock()
    limiter = nim.LocalLimiter(clock=clock, poll_interval=POLL)
    two = nim.ActionLimits((nim.Rate(2, 32),), block=0)
    limiter.note_past_calls("app:past", two, [10.0, 20.0, 40.0])
    assert await _waits(limiter, "app:past", two)
    clock.advance(11.5)
    assert await _waits(limiter, "app:past", two)
    clock.advance(0.5)
    await _take(limiter, "app:past", two)
    assert await _waits(limiter, "app:past", two)
    clock.advance(10)
    await _take(limiter, "app:past", two)


async def test_past_calls_are_not_counted_twice_with_a_file(tmp_path: Path) -> None:
    """The file holds the earlier process's calls already: note_past_calls adds nothing."""
    clock = FakeClock(EPOCH)
    limiter = _limiter(tmp_path / "limits.sqlite", clock)
    limiter.note_past_calls("app:file", ONE, [1.0])
    await _take(limiter, "app:file", ONE)


async def test_the_pipeline_tells_the_limiter_past_calls_under_the_slot_key() -> None:
    """Pipeline.note_past_calls uses the key of its slots (app key and action path), and
    does nothing without rate limits."""
    clock = FakeClock()
    limiter = nim.LocalLimiter(clock=clock, poll_interval=POLL)
    limits = nim.RateLimits().with_action("sendBatchMsg", nim.Rate(1, 60))
    client = make_client(rate_limits=limits, limiter=limiter)
    await client._pipeline.note_past_calls("sendBatchMsg", [30.0])
    batch = limits.for_action("msg/sendBatchMsg")
    assert await _waits(limiter, f"{APP_KEY}:msg/sendBatchMsg", batch)
    clock.advance(30)
    await _take(limiter, f"{APP_KEY}:msg/sendBatchMsg", batch)
    client.rate_limits = None
    await client._pipeline.note_past_calls("sendBatchMsg", [0.0])
    await client.aclose()


# Real processes against the emulator on a loopback port.


@contextmanager
def _workers(
    base_url: str, path: Path, mode: str, scale: float, counts: dict[str, int]
) -> Iterator[list[subprocess.Popen[str]]]:
    """Start a worker per name (making that many calls), all at once, and wait until each
    is ready; kill the survivors at the end."""
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests._limiter_file_worker",
                base_url,
                str(path),
                mode,
                str(count),
                str(scale),
                name,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, count in counts.items()
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n"
        yield workers
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait(30)
            for stream in (worker.stdin, worker.stdout):
                if stream is not None:
                    stream.close()


def _go(worker: subprocess.Popen[str]) -> None:
    assert worker.stdin is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()


def _line(worker: subprocess.Popen[str]) -> str:
    assert worker.stdout is not None
    return worker.stdout.readline().strip()


def test_two_processes_sharing_a_file_get_no_416(tmp_path: Path) -> None:
    """Two workers, 150 calls each at once, at NetEase's real limits (100 per second)
    shared through the file: every call delivered once, zero 416."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=nim.RateLimits.default())
    path = tmp_path / "limits.sqlite"
    with (
        emulator.serve() as base_url,
        _workers(base_url, path, "attach", 1.0, {"p0": 150, "p1": 150}) as workers,
    ):
        for worker in workers:
            _go(worker)
        assert [_line(worker) for worker in workers] == ["sent 150", "sent 150"]
    assert emulator.rate_limited == 0
    assert [call.code for call in emulator.calls] == [200] * 300
    expected = sorted(f"p{worker}-{number}" for worker in range(2) for number in range(150))
    assert sorted(message.to for message in emulator.messages) == expected


def test_a_process_restarted_inside_the_window_gets_no_416(tmp_path: Path) -> None:
    """The first worker spends the whole budget (100 calls per 0.5 s) and is killed with
    SIGKILL; the second starts at once: it waits out the window instead of tripping the block
    (with a file of its own it trips it: the emulator answers 416)."""
    limits = nim.RateLimits.default().scaled(0.5)
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=limits)
    path = tmp_path / "limits.sqlite"
    with (
        emulator.serve() as base_url,
        _workers(base_url, path, "attach", 0.5, {"first": 100, "second": 50}) as (first, second),
    ):
        _go(first)
        assert _line(first) == "sent 100"
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        _go(second)
        assert _line(second) == "sent 50"
    assert emulator.rate_limited == 0
    assert [call.code for call in emulator.calls] == [200] * 150


def test_the_sixth_daily_clean_up_fails_at_once_unsent(tmp_path: Path) -> None:
    """job/nos/del allows 5 calls a day: six processes sharing a file call it once each;
    five succeed, the sixth raises SlotTimeout at once with hours to wait, never sent."""
    limits = nim.RateLimits.default()
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=limits)
    path = tmp_path / "limits.sqlite"
    names = {f"n{number}": 1 for number in range(6)}
    with emulator.serve() as base_url, _workers(base_url, path, "nos", 1, names) as workers:
        for worker in workers:
            _go(worker)
        lines = [_line(worker) for worker in workers]
    assert lines.count("ok") == 5
    (refused,) = (line for line in lines if line != "ok")
    kind, retry_after, took = refused.split()
    assert kind == "SlotTimeout"
    # The five slots free a day after their answers: hours away, and no wait for them.
    assert float(retry_after) > 23 * 3600
    assert float(took) < DEFAULT_MAX_WAIT
    assert [call.action for call in emulator.calls] == ["job/nos/del"] * 5
    assert emulator.rate_limited == 0
