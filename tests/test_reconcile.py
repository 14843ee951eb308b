"""client.reconcile: the chunks that may have been sent are settled with the service's
message history (history/querySessionMsg), never guessed, and a journal records the
verdict so that a resume sends what was not delivered, and nothing twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

SEND = "msg/sendBatchMsg"
QUERY = "history/querySessionMsg"
ACCIDS = [f"u{number:02}" for number in range(30)]
# Each phase 0.05 s: a chunk's request cannot be on its way 0.2 s after it went out.
TIMEOUT = 0.05
# The emulator writes its history as it answers: no grace needed.
GRACE = 0.1


def _emulator(*unregistered: str) -> NimEmulator:
    accounts = ["alice", *(accid for accid in ACCIDS if accid not in unregistered)]
    return NimEmulator(APP_KEY, APP_SECRET, accounts=accounts)


def _delivered(emulator: NimEmulator) -> Counter[str]:
    return Counter(m.to for m in emulator.messages if m.action == SEND)


async def _ambiguous_job(
    emulator: NimEmulator, client: nim.NimClient, job: nim.BatchJob, **keywords: object
) -> nim.BatchResult:
    """Chunk 0 carried out then answered 500, chunk 1 answered 500 without being carried out:
    both may have been sent, as far as the client can tell."""
    emulator.fail_next(SEND, 500, after=True)
    emulator.fail_next(SEND, 500)
    result = await client.send_batch_msg(
        "alice", ACCIDS, nim.Text("hi"), max_concurrency=1, job=job, **keywords
    )
    assert [chunk.may_have_been_sent for chunk in result.failed] == [True, True]
    return result


async def test_a_delivered_chunk_is_accepted_and_an_undelivered_one_is_surely_unsent() -> None:
    """The history holds chunk 0's message (accepted) and not chunk 1's (surely unsent)."""
    emulator = _emulator("u03")
    async with make_client(emulator, batch_size=10, timeout=TIMEOUT) as client:
        job = nim.BatchJob()
        await _ambiguous_job(emulator, client, job)
        settled = await client.reconcile(job, grace=GRACE)
    assert [chunk.may_have_been_sent for chunk in settled.failed] == [False]
    assert settled.failed[0].accids == tuple(ACCIDS[10:20])
    assert settled.resendable() == ACCIDS[10:20]
    assert settled.unregister == ["u03"]
    assert settled.accepted == 19  # chunk 0 less u03, and chunk 2
    queried = {call.form["to"] for call in emulator.calls if call.action == QUERY}
    assert queried == set(ACCIDS[:20])  # only the chunks that may have been sent


async def test_reconciling_the_result_is_reconciling_its_job() -> None:
    """The BatchResult a send returned knows its job."""
    emulator = _emulator()
    async with make_client(emulator, batch_size=10, timeout=TIMEOUT) as client:
        result = await _ambiguous_job(emulator, client, nim.BatchJob())
        settled = await client.reconcile(result, grace=GRACE)
    assert len(settled.failed) == 1
    assert not settled.failed[0].may_have_been_sent


async def test_msg_ids_asked_for_come_from_the_history() -> None:
    """With return_msgid, a settled chunk's recipients get the msgids the history shows."""
    emulator = _emulator()
    async with make_client(emulator, batch_size=10, timeout=TIMEOUT) as client:
        job = nim.BatchJob()
        await _ambiguous_job(emulator, client, job, return_msgid=True)
        settled = await client.reconcile(job, grace=GRACE)
    stored = {m.to: m.msgid for m in emulator.messages if m.action == SEND}
    assert settled.msgids == stored


async def test_a_journal_records_the_verdict_and_a_resume_sends_only_the_undelivered(
    tmp_path: Path,
) -> None:
    """Reconcile, then resume on the journal: everyone exactly once."""
    emulator = _emulator()
    journal = tmp_path / "job.sqlite"
    async with make_client(emulator, batch_size=10, timeout=TIMEOUT) as client:
        job = nim.BatchJob(journal)
        await _ambiguous_job(emulator, client, job)
        await client.reconcile(job, grace=GRACE)
        resumed = await client.send_batch_msg(
            "alice", ACCIDS, nim.Text("hi"), job=nim.BatchJob(journal)
        )
    assert resumed.ok
    assert resumed.calls == 1  # chunk 1 only
    assert resumed.accepted == len(ACCIDS)
    assert _delivered(emulator) == Counter(dict.fromkeys(ACCIDS, 1))


async def test_notifications_are_not_in_history_and_stay_maybe_sent() -> None:
    """sendBatchAttachMsg chunks cannot be settled: no query, no guess."""
    emulator = _emulator()
    emulator.fail_next("msg/sendBatchAttachMsg", 500, after=True)
    async with make_client(emulator, batch_size=10, timeout=TIMEOUT) as client:
        job = nim.BatchJob()
        await client.send_batch_attach_msg("alice", ACCIDS, "x", max_concurrency=1, job=job)
        settled = await client.reconcile(job, grace=GRACE)
    assert [chunk.may_have_been_sent for chunk in settled.failed] == [True]
    assert not any(call.action == QUERY for call in emulator.calls)


async def test_messages_kept_out_of_history_stay_maybe_sent() -> None:
    """option history=false: the history cannot tell, so nothing is settled."""
    emulator = _emulator()
    emulator.fail_next(SEND, 500, after=True)
    async with make_client(emulator, batch_size=10, timeout=TIMEOUT) as client:
        job = nim.BatchJob()
        await client.send_batch_msg(
            "alice",
            ACCIDS,
            nim.Text("hi"),
            option=nim.MessageOption(history=False),
            max_concurrency=1,
            job=job,
        )
        settled = await client.reconcile(job, grace=GRACE)
    assert [chunk.may_have_been_sent for chunk in settled.failed] == [True]
    assert not any(call.action == QUERY for call in emulator.calls)


async def test_a_chunk_whose_queries_fail_stays_maybe_sent() -> None:
    """A query the service refuses leaves its chunk unsettled; the others are settled."""
    emulator = _emulator()
    async with make_client(emulator, batch_size=10, timeout=TIMEOUT) as client:
        job = nim.BatchJob()
        await _ambiguous_job(emulator, client, job)
        emulator.fail_next(QUERY, 403)
        settled = await client.reconcile(job, grace=GRACE)
    assert sorted(chunk.may_have_been_sent for chunk in settled.failed) == [False, True]


async def test_another_text_in_the_session_is_not_taken_for_this_job() -> None:
    """Only a message of this sender, type and body counts: another text in the session
    does not make an undelivered chunk look delivered."""
    emulator = _emulator()
    async with make_client(emulator, batch_size=10, timeout=TIMEOUT) as client:
        await client.send_msg("alice", "u15", nim.Text("hello there"))
        job = nim.BatchJob()
        await _ambiguous_job(emulator, client, job)
        settled = await client.reconcile(job, grace=GRACE)
    assert settled.failed[0].accids == tuple(ACCIDS[10:20])
    assert not settled.failed[0].may_have_been_sent


@pytest.mark.parametrize("subject", [None, "job", nim.BatchJob()])
async def test_only_a_job_that_ran_can_be_reconciled(subject: object) -> None:
    """Anything else is a ConfigurationError, before any query."""
    emulator = _emulator()
    async with make_client(emulator) as client:
        with pytest.raises(nim.ConfigurationError, match="BatchJob that ran"):
            await client.reconcile(subject)  # type: ignore[arg-type]
    assert emulator.calls == []


@pytest.mark.parametrize("grace", [-1, True, "10", float("nan")])
async def test_a_grace_that_is_no_number_of_seconds_is_refused(grace: object) -> None:
    """ConfigurationError before any query."""
    emulator = _emulator()
    async with make_client(emulator, batch_size=10, timeout=TIMEOUT) as client:
        result = await _ambiguous_job(emulator, client, nim.BatchJob())
        calls = len(emulator.calls)
        with pytest.raises(nim.ConfigurationError, match="grace"):
            await client.reconcile(result, grace=grace)  # type: ignore[arg-type]
    assert len(emulator.calls) == calls
