"""Bulk sends of any size: lazy chunks, failures, cancellation, every recipient accounted for."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import anyio
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

ACTION = "msg/sendBatchAttachMsg"


class Recipients:
    """An async generator of accids that counts how many were read."""

    def __init__(self, count: int, prefix: str = "user") -> None:
        self.accids = [f"{prefix}{number}" for number in range(count)]
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[str]:
        for accid in self.accids:
            self.read += 1
            yield accid


def _deliveries(emulator: NimEmulator) -> Counter[str]:
    return Counter(message.to for message in emulator.messages)


def _assert_partition(result: nim.BatchResult, accids: list[str], accepted: set[str]) -> None:
    """Every recipient is in exactly one place: accepted, unregister, or a failed chunk."""
    failed = [accid for chunk in result.failed for accid in chunk.accids]
    places = [*accepted, *result.unregister, *failed]
    assert sorted(places) == sorted(accids)
    assert result.accepted == len(accepted)


async def test_an_async_generator_of_5000_is_sent_in_ten_chunks_exactly_once() -> None:
    """5000 recipients from an async generator: ten calls of 500, one delivery each."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    recipients = Recipients(5000)
    async with make_client(emulator, batch_size=500) as client:
        result = await client.send_batch_attach_msg("alice", recipients, {"sale": 1})
    assert (result.accepted, result.calls, result.ok) == (5000, 10, True)
    assert [len(call.form["toAccids"].split(",")) for call in emulator.calls] == [500] * 10
    assert _deliveries(emulator) == Counter(recipients.accids)


async def test_the_input_is_read_lazily() -> None:
    """Never more than max_concurrency + 1 chunks are read ahead of what has finished."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.01, ACTION)
    recipients = Recipients(3000)
    ahead: list[int] = []

    def on_progress(progress: nim.Progress) -> None:
        if progress.done:  # after a chunk, not the report before the first call
            ahead.append(recipients.read - progress.done)

    async with make_client(emulator, batch_size=100) as client:
        await client.send_batch_attach_msg(
            "alice", recipients, "x", max_concurrency=2, on_progress=on_progress
        )
    assert len(ahead) >= 30  # one report per chunk at least (a slow run adds ticks)
    assert max(ahead) <= (2 + 1) * 100


@pytest.mark.parametrize(
    ("code", "after", "may_have_been_sent"),
    # 419 (count over limit) refuses one call; a 414 would stop the whole job.
    [(419, False, False), (500, True, True)],
    ids=["refused", "carried-out-then-failed"],
)
async def test_a_quarter_of_chunks_failing_loses_nobody_and_doubles_nobody(
    code: int, after: bool, may_have_been_sent: bool
) -> None:
    """Every 4th chunk fails: the others go on, every recipient is accounted for once,
    and resending the chunks that surely did not go completes the job exactly once."""
    registered = {f"user{n}" for n in range(1900)}
    emulator = NimEmulator(APP_KEY, APP_SECRET, accounts=[*registered, "alice"])
    recipients = Recipients(2000)
    emulator.fail_every(ACTION, 4, code, after=after)
    async with make_client(emulator, batch_size=100) as client:
        result = await client.send_batch_attach_msg("alice", recipients, "x")

        assert len(result.failed) == 5
        assert result.calls == 20
        assert {chunk.may_have_been_sent for chunk in result.failed} == {may_have_been_sent}
        failed = {accid for chunk in result.failed for accid in chunk.accids}
        accepted = set(recipients.accids) - failed - set(result.unregister)
        _assert_partition(result, recipients.accids, accepted)
        deliveries = _deliveries(emulator)
        assert max(deliveries.values()) == 1
        assert all(deliveries[accid] == 1 for accid in accepted)
        assert all(deliveries[accid] == (after and accid in registered) for accid in failed)

        emulator.fail_every(ACTION, 0, code)
        unsent = [c.accids for c in result.failed if not c.may_have_been_sent]
        for accids in unsent:
            (await client.send_batch_attach_msg("alice", accids, "x")).raise_for_failures()
    assert _deliveries(emulator) == Counter(dict.fromkeys(registered, 1))


async def test_cancelling_a_job_keeps_a_record_of_what_was_and_was_not_sent() -> None:
    """A cancel cuts the job short; BatchJob still places every recipient read so far."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.2, ACTION)
    recipients = Recipients(5000)
    job = nim.BatchJob()
    async with make_client(emulator, batch_size=500) as client:
        with anyio.move_on_after(0.5) as scope:
            await client.send_batch_attach_msg("alice", recipients, "x", max_concurrency=2, job=job)
    assert scope.cancelled_caught
    result = job.result()
    read = recipients.accids[: recipients.read]
    assert 0 < len(read) < 5000
    cut = [chunk for chunk in result.failed if isinstance(chunk.error, nim.ChunkCancelled)]
    assert cut
    assert result.failed == cut
    failed = {accid for chunk in result.failed for accid in chunk.accids}
    accepted = set(read) - failed
    _assert_partition(result, read, accepted)
    deliveries = _deliveries(emulator)
    assert all(deliveries[accid] == 1 for accid in accepted)
    for chunk in cut:
        if not chunk.may_have_been_sent:
            assert all(deliveries[accid] == 0 for accid in chunk.accids)
    assert job.progress.done == len(read)


async def test_batch_failed_names_the_first_error_and_carries_the_result() -> None:
    """raise_for_failures() raises one NimError subclass holding the whole result."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next(ACTION, 503)
    async with make_client(emulator, batch_size=2) as client:
        result = await client.send_batch_attach_msg(
            "alice", ["a", "b", "c"], "x", max_concurrency=1
        )
    with pytest.raises(nim.BatchFailed, match="1 of 2 batch calls failed") as caught:
        result.raise_for_failures()
    assert isinstance(caught.value, nim.NimError)
    assert caught.value.result is result
    assert result.failed_count == 2


async def test_max_concurrency_must_be_positive() -> None:
    """Zero concurrency would never send: refused up front."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with make_client(emulator, batch_size=500) as client:
        with pytest.raises(nim.ConfigurationError, match="max_concurrency"):
            await client.send_batch_attach_msg("alice", ["a"], "x", max_concurrency=0)
    assert emulator.calls == []
