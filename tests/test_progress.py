"""What ``on_progress`` tells a bulk job's caller: an ETA from the budget's windows, right
while the job waits on them, and a resumed job's count starting where its journal stands."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio


async def test_the_eta_is_within_a_quarter_of_the_true_remaining_time_while_waiting() -> None:
    """100 calls at 20 a second (five windows): after the first window, every ETA reported
    is within 25% of the time the job then really took, though most of it is spent
    waiting for the next window (a rate measured over recent calls says a fraction)."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limits = nim.RateLimits().with_action("sendBatchAttachMsg", nim.Rate(20, 1.0), block=1)
    seen: list[tuple[float, float | None]] = []
    recipients = [f"user{n}" for n in range(100)]
    async with make_client(emulator, rate_limits=limits, batch_size=1) as client:
        started = time.monotonic()
        result = await client.send_batch_attach_msg(
            "alice", recipients, "x", on_progress=lambda p: seen.append((time.monotonic(), p.eta))
        )
        ended = time.monotonic()
    assert result.ok
    late = [(at, eta) for at, eta in seen if at - started >= 1.0 and ended - at >= 0.5]
    assert len(late) >= 5  # reports while waiting, not only after chunks
    for at, eta in late:
        assert eta is not None
        true = ended - at
        assert abs(eta - true) <= 0.25 * true, (round(at - started, 2), eta, true)


async def test_a_resumed_job_reports_from_its_journal_count(tmp_path: Path) -> None:
    """The first report of a resumed job counts the recipients its journal placed (as
    ``resumed`` and in ``done``), no rate before this run sent anything, and its ETA the rest."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    journal = tmp_path / "job.sqlite3"
    recipients = [f"user{n}" for n in range(1000)]
    async with make_client(emulator, batch_size=100) as client:
        emulator.fail_every("msg/sendBatchAttachMsg", 4, 419)  # chunks 4 and 8: surely unsent
        first = await client.send_batch_attach_msg(
            "alice", recipients, "x", job=nim.BatchJob(journal), max_concurrency=1
        )
        assert (first.accepted, len(first.failed)) == (800, 2)
        emulator.fail_every("msg/sendBatchAttachMsg", 0, 419)
        reports: list[nim.Progress] = []
        second = await client.send_batch_attach_msg(
            "alice",
            recipients,
            "x",
            job=nim.BatchJob(journal),
            max_concurrency=1,
            on_progress=reports.append,
        )
    assert second.accepted == 1000
    opening = reports[0]
    assert (opening.done, opening.resumed, opening.total) == (800, 800, 1000)
    assert opening.rate is None
    assert opening.eta is not None
    assert 0 < opening.eta < 1.0  # two calls, no limits
    # A slow run may add a tick between chunks: the same counts.
    assert list(dict.fromkeys(p.done for p in reports)) == [800, 900, 1000]
