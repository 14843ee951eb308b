"""Journalled bulk jobs: a record that outlives the process, and resuming that never resends
what the journal says was done."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

ACTION = "msg/sendBatchAttachMsg"
ACCIDS = [f"u{number:03}" for number in range(100)]


def _deliveries(emulator: NimEmulator) -> Counter[str]:
    return Counter(message.to for message in emulator.messages)


async def test_a_finished_job_resumed_sends_nothing_and_returns_the_whole_result(
    tmp_path: Path, emulator: NimEmulator
) -> None:
    """Every chunk is recorded as done: the second run makes no call, same result."""
    journal = tmp_path / "job.sqlite"
    async with make_client(emulator, batch_size=10) as client:
        first = await client.send_batch_msg(
            "alice", ACCIDS, nim.Text("hi"), return_msgid=True, job=nim.BatchJob(journal)
        )
        calls = len(emulator.calls)
        again = await client.send_batch_msg(
            "alice", ACCIDS, nim.Text("hi"), return_msgid=True, job=nim.BatchJob(journal)
        )
    assert len(emulator.calls) == calls == 10
    assert again.accepted == first.accepted == 100
    assert again.msgids == first.msgids
    assert again.timetags == first.timetags
    assert again.calls == 0


async def test_a_cancelled_job_resumes_without_sending_anything_twice(tmp_path: Path) -> None:
    """Chunks done are kept, chunks never sent are sent, chunks in flight are maybe-sent."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.05, ACTION)
    journal = tmp_path / "job.sqlite"
    async with make_client(emulator, batch_size=10) as client:
        with anyio.move_on_after(0.12):
            await client.send_batch_attach_msg(
                "alice", ACCIDS, "x", max_concurrency=2, job=nim.BatchJob(journal)
            )
        emulator.set_latency(0, ACTION)
        result = await client.send_batch_attach_msg(
            "alice", ACCIDS, "x", max_concurrency=2, job=nim.BatchJob(journal)
        )
    maybe = [accid for chunk in result.failed if chunk.may_have_been_sent for accid in chunk.accids]
    assert all(chunk.may_have_been_sent for chunk in result.failed)
    assert len(result.failed) <= 2  # at most the chunks that were in flight
    assert result.accepted + result.failed_count == len(ACCIDS)
    deliveries = _deliveries(emulator)
    assert all(deliveries[accid] == 1 for accid in ACCIDS if accid not in maybe)
    assert all(deliveries[accid] <= 1 for accid in maybe)


async def test_resend_in_flight_sends_the_in_flight_chunks_again(tmp_path: Path) -> None:
    """The opt-in: every recipient reached, the in-flight ones possibly twice."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.05, ACTION)
    journal = tmp_path / "job.sqlite"
    async with make_client(emulator, batch_size=10) as client:
        with anyio.move_on_after(0.12):
            await client.send_batch_attach_msg(
                "alice", ACCIDS, "x", max_concurrency=2, job=nim.BatchJob(journal)
            )
        emulator.set_latency(0, ACTION)
        job = nim.BatchJob(journal, resend_in_flight=True)
        result = await client.send_batch_attach_msg("alice", ACCIDS, "x", job=job)
    assert result.ok
    assert result.accepted == len(ACCIDS)
    assert set(_deliveries(emulator)) == set(ACCIDS)


async def test_surely_unsent_chunks_are_sent_on_resume(tmp_path: Path) -> None:
    """A refused chunk (419) is recorded as surely unsent; the next run sends it."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next(ACTION, 419)
    journal = tmp_path / "job.sqlite"
    async with make_client(emulator, batch_size=10) as client:
        first = await client.send_batch_attach_msg(
            "alice", ACCIDS, "x", max_concurrency=1, job=nim.BatchJob(journal)
        )
        second = await client.send_batch_attach_msg("alice", ACCIDS, "x", job=nim.BatchJob(journal))
    assert [len(chunk.accids) for chunk in first.failed] == [10]
    assert second.ok
    assert second.calls == 1
    assert _deliveries(emulator) == Counter(dict.fromkeys(ACCIDS, 1))


@pytest.mark.parametrize(
    "change",
    ["another message", "other recipients", "fewer recipients", "another batch size"],
)
async def test_a_journal_of_another_job_is_refused_before_anything_is_sent(
    tmp_path: Path, emulator: NimEmulator, change: str
) -> None:
    """JournalMismatch says so, and the emulator sees no call of the second run."""
    journal = tmp_path / "job.sqlite"
    async with make_client(emulator, batch_size=10) as client:
        await client.send_batch_attach_msg("alice", ACCIDS, "x", job=nim.BatchJob(journal))
        calls = len(emulator.calls)
        attach, accids, size = "x", list(ACCIDS), 10
        if change == "another message":
            attach = "y"
        elif change == "other recipients":
            accids[55] = "someone-else"
        elif change == "fewer recipients":
            accids = accids[:50]
        else:
            size = 20
        with pytest.raises(nim.JournalMismatch):
            await client.send_batch_attach_msg(
                "alice", accids, attach, batch_size=size, job=nim.BatchJob(journal)
            )
    assert len(emulator.calls) == calls


async def test_a_stream_with_other_recipients_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """From a generator the journal's chunks are checked as read; sends wait until they match."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next(ACTION, 419, count=10)
    journal = tmp_path / "job.sqlite"

    async def recipients(changed_at: int | None) -> AsyncIterator[str]:
        for position, accid in enumerate(ACCIDS):
            yield "someone-else" if position == changed_at else accid

    async with make_client(emulator, batch_size=10) as client:
        first = await client.send_batch_attach_msg(
            "alice", recipients(None), "x", max_concurrency=1, job=nim.BatchJob(journal)
        )
        assert len(first.failed) == 10  # every chunk refused, surely unsent
        with pytest.raises(nim.JournalMismatch):
            await client.send_batch_attach_msg(
                "alice", recipients(95), "x", job=nim.BatchJob(journal)
            )
    assert len(emulator.calls) == 10
    assert emulator.messages == []


def test_the_journal_grows_with_chunks_not_with_accids(tmp_path: Path) -> None:
    """Without msg ids a chunk's row holds a digest and its outcome, not its accids."""

    async def run() -> None:
        emulator = NimEmulator(APP_KEY, APP_SECRET)
        async with make_client(emulator, batch_size=500) as client:
            accids = [f"recipient-long-name-{number:06}" for number in range(5000)]
            await client.send_batch_attach_msg(
                "alice", accids, "x", job=nim.BatchJob(tmp_path / "job.sqlite")
            )

    anyio.run(run)
    import sqlite3

    with sqlite3.connect(tmp_path / "job.sqlite") as connection:
        rows = connection.execute("SELECT record FROM chunk").fetchall()
    assert len(rows) == 10
    assert all(len(text) < 200 for (text,) in rows)
    assert all("recipient-long" not in text for (text,) in rows)
    assert {json.loads(text)["s"] for (text,) in rows} == {"sent"}


@pytest.mark.parametrize("journal", [42, b"path"])
def test_a_journal_that_is_no_journal_is_a_configuration_error(journal: object) -> None:
    """A path, a RedisJournal or None."""
    with pytest.raises(nim.ConfigurationError, match="journal"):
        nim.BatchJob(journal)  # type: ignore[arg-type]


def test_a_job_knows_its_calls_and_duration_before_it_starts() -> None:
    """200,000 recipients at 120 batch calls a minute: 400 calls, 3 minutes of waiting."""
    client = make_client(rate_limits=nim.RateLimits.default())
    estimate = client.estimate_batch("send_batch_attach_msg", 200_000)
    assert estimate == nim.BatchEstimate(calls=400, seconds=180.0)
    with_ids = client.estimate_batch("send_batch_msg", 200_000, return_msgid=True)
    assert with_ids == nim.BatchEstimate(calls=2000, seconds=16 * 60.0)
    bigger = client.estimate_batch("send_batch_attach_msg", 200_000, batch_size=5000)
    assert bigger == nim.BatchEstimate(calls=40, seconds=0.0)
    with pytest.raises(nim.ConfigurationError, match="method"):
        client.estimate_batch("send_msg", 10)


async def test_progress_reports_rate_and_eta_and_keeps_reporting_while_the_job_waits() -> None:
    """Before the first call the ETA comes from the budget's windows; waits still report."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limits = nim.RateLimits().with_action("sendBatchAttachMsg", nim.Rate(1, 1.2), block=1)
    reports: list[nim.Progress] = []
    async with make_client(emulator, rate_limits=limits, batch_size=10) as client:
        await client.send_batch_attach_msg("alice", ACCIDS[:30], "x", on_progress=reports.append)
    first = reports[0]
    assert (first.done, first.total, first.rate) == (0, 30, None)
    # Three calls, one a window: two windows of 1.2 s plus an answer each (first guess 0.05 s).
    assert first.eta == pytest.approx(2 * (1.2 + 0.05) + 0.05)
    chunk_reports = {p.done for p in reports if p.done}
    assert chunk_reports == {10, 20, 30}
    # Two waits of 1.2 s each: reports came between the chunks, not only after them.
    assert len(reports) > 1 + len(chunk_reports)
    assert reports[-1].eta == 0.0
    assert all(p.rate is not None and p.rate > 0 for p in reports if p.done)
