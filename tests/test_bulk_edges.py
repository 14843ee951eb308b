"""Bulk sends when things go wrong around them: cancels in the limiter, failing callbacks
and iterators, malformed answers — every recipient still in exactly one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.lowlevel
import httpx
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

ACTION = "msg/sendBatchAttachMsg"


def _placed(result: nim.BatchResult) -> list[str]:
    return sorted(accid for chunk in result.failed for accid in chunk.accids)


async def test_a_chunk_cancelled_while_waiting_for_its_slot_was_surely_not_sent() -> None:
    """Cut off in the rate limiter: may_have_been_sent is False, and nothing arrived."""
    limits = nim.RateLimits.default().with_action("sendBatchAttachMsg", nim.Rate(2, 60))
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    job = nim.BatchJob()
    accids = [f"u{n}" for n in range(20)]
    async with make_client(emulator, rate_limits=limits, batch_size=5) as client:
        with anyio.move_on_after(0.5):
            await client.send_batch_attach_msg("alice", accids, "x", job=job)
    result = job.result()
    assert len(emulator.calls) == 2
    assert result.accepted == 10
    waiting = [chunk for chunk in result.failed if not chunk.may_have_been_sent]
    assert [chunk.accids[0] for chunk in waiting] == ["u10", "u15"]
    assert all(isinstance(chunk.error, nim.ChunkCancelled) for chunk in waiting)
    assert {message.to for message in emulator.messages} == set(accids[:10])


async def test_a_failing_progress_callback_stops_the_job_and_loses_nobody() -> None:
    """The callback's error reaches the caller; every recipient read is still placed once."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.set_latency(0.05, ACTION)
    job = nim.BatchJob()
    read: list[str] = []

    async def recipients() -> AsyncIterator[str]:
        for number in range(40):
            read.append(f"u{number}")
            yield read[-1]

    class ProgressBarBroke(Exception):
        pass

    def explode(progress: nim.Progress) -> None:
        raise ProgressBarBroke("progress bar broke")

    async with make_client(emulator, batch_size=5) as client:
        # The caller's own error, as itself: not wrapped in an ExceptionGroup.
        with pytest.raises(ProgressBarBroke, match="progress bar broke"):
            await client.send_batch_attach_msg(
                "alice", recipients(), "x", job=job, on_progress=explode, max_concurrency=2
            )
    result = job.result()
    accepted = [accid for accid in read if accid not in set(_placed(result))]
    assert len(accepted) == result.accepted
    assert sorted(accepted + _placed(result)) == sorted(read)
    delivered = {message.to for message in emulator.messages}
    assert set(accepted) <= delivered
    unsent = [a for c in result.failed if not c.may_have_been_sent for a in c.accids]
    assert delivered.isdisjoint(unsent)


async def test_an_iterator_that_fails_midway_leaves_what_it_gave_accounted_for() -> None:
    """Recipients read before the iterator raised are placed; the partial chunk as unsent."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)

    def recipients() -> Iterator[str]:
        for number in range(13):
            yield f"u{number}"
        raise OSError("the database went away")

    job = nim.BatchJob()
    async with make_client(emulator, batch_size=5) as client:
        # The iterator's own error, as itself: `except OSError` catches it.
        with pytest.raises(OSError, match="the database went away"):
            await client.send_batch_attach_msg("alice", recipients(), "x", job=job)
    result = job.result()
    failed_unsent = [a for c in result.failed if not c.may_have_been_sent for a in c.accids]
    assert failed_unsent[-3:] == ["u10", "u11", "u12"]
    delivered = {message.to for message in emulator.messages}
    assert delivered.isdisjoint(failed_unsent)
    assert sorted(delivered | set(_placed(result))) == sorted(f"u{n}" for n in range(13))


async def test_a_malformed_answer_fails_only_its_own_chunk() -> None:
    """An unreadable `unregister` makes one FailedChunk (maybe sent), not an unbuildable result."""
    answers = iter([{"code": 200, "unregister": "not json"}, {"code": 200}])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers))

    async with make_client(
        httpx.MockTransport(handler), batch_size=2, retry=nim.RetryPolicy(max_attempts=1)
    ) as client:
        result = await client.send_batch_attach_msg(
            "alice", ["a", "b", "c", "d"], "x", max_concurrency=1
        )
    (failed,) = result.failed
    assert failed.accids == ("a", "b")
    assert isinstance(failed.error, nim.ServerError)
    assert failed.may_have_been_sent
    assert result.accepted == 2


async def test_an_async_progress_callback_is_awaited() -> None:
    """on_progress may be a coroutine function."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    seen: list[int] = []

    async def report(progress: nim.Progress) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(progress.done)

    async with make_client(emulator, batch_size=2) as client:
        await client.send_batch_attach_msg(
            "alice", ["a", "b", "c"], "x", on_progress=report, max_concurrency=1
        )
    assert list(dict.fromkeys(seen)) == [0, 2, 3]  # before the first call, then per chunk


async def test_a_set_is_sized_and_checked_whole_before_sending() -> None:
    """Any collection, not only a list, gets a total and the up-front accid check."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    totals: list[int | None] = []
    async with make_client(emulator) as client:
        await client.send_batch_attach_msg(
            "alice", {"a", "b"}, "x", on_progress=lambda p: totals.append(p.total)
        )
        with pytest.raises(nim.InvalidRequest, match="toAccids"):
            await client.send_batch_attach_msg("alice", {"ok", "x" * 33}, "x")
    assert set(totals) == {2}
    assert len(emulator.calls) == 1


async def test_a_non_text_accid_from_a_stream_fails_alone() -> None:
    """An object among streamed accids fails alone with InvalidRequest, unsent."""

    async def recipients() -> AsyncIterator[object]:
        for accid in ("a", "b", object(), "c"):
            yield accid

    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with make_client(emulator, batch_size=2) as client:
        result = await client.send_batch_attach_msg("alice", recipients(), "x")  # type: ignore[arg-type]
    (failed,) = result.failed
    assert isinstance(failed.error, nim.InvalidRequest)
    assert "at position 2" in str(failed.error)
    assert not failed.may_have_been_sent
    assert result.accepted == 3
    assert len(emulator.calls) == 2


async def test_an_error_every_chunk_would_meet_stops_the_job_and_places_every_recipient() -> None:
    """A wrong AppSecret: at most the chunks in flight are refused, the rest is placed unsent."""
    emulator = NimEmulator(APP_KEY, "the-real-secret")
    accids = [f"u{number}" for number in range(100)]
    async with make_client(emulator, batch_size=5) as client:
        result = await client.send_batch_attach_msg("alice", accids, "x", max_concurrency=2)
    assert isinstance(result.stopped, nim.ParameterError)
    assert 1 <= len(emulator.calls) <= 2
    assert result.calls == len(emulator.calls)
    assert sorted(_placed(result)) == sorted(accids)
    assert not any(chunk.may_have_been_sent for chunk in result.failed)
    assert sorted(result.resendable()) == sorted(accids)


async def test_a_stopped_stream_leaves_its_unread_recipients_in_the_iterator() -> None:
    """From a generator, the job stops reading: what it read is placed, the rest stays unread."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next(ACTION, 403, count=1000)
    read: list[str] = []

    async def recipients() -> AsyncIterator[str]:
        for number in range(1000):
            read.append(f"u{number}")
            yield read[-1]

    async with make_client(emulator, batch_size=5) as client:
        result = await client.send_batch_attach_msg("alice", recipients(), "x", max_concurrency=1)
    assert isinstance(result.stopped, nim.PermissionDenied)
    assert len(emulator.calls) == 1
    assert len(read) < 1000
    assert sorted(_placed(result)) == sorted(read)


async def test_the_resend_recipe_skips_bad_accids_and_maybe_sent_chunks() -> None:
    """resendable(): surely unsent, and not refused by the client for its own content."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next(ACTION, 419)  # the first call is refused: surely unsent
    emulator.fail_next(ACTION, 500, after=True)  # the second is carried out, then fails

    async def recipients() -> AsyncIterator[str]:
        for accid in ["a", "b", "", "c", "d", "e"]:
            yield accid

    async with make_client(emulator, batch_size=2) as client:
        result = await client.send_batch_attach_msg("alice", recipients(), "x", max_concurrency=1)
        assert sorted(result.resendable()) == ["a", "b"]
        again = await client.send_batch_attach_msg("alice", result.resendable(), "x")
    assert again.ok
    assert again.accepted == 2
