"""Bounded, honest waits: no call waits longer than max_wait, and a slot further away fails at
once with the real retry_after; a 416 whose block outlasts the bounds is not slept through.

The limiter's arithmetic runs in virtual time (a FakeClock); real time only
bounds how long a test lets a call take (PATIENCE), far below the max_wait a
call that waited it out would need, so "at once" is what the tests prove.
"""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

import nim_async as nim
from nim_async._base import DEFAULT_MAX_WAIT
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client, past_nos_range
from ._timing import FakeClock

pytestmark = pytest.mark.anyio

ONE_A_MINUTE = nim.RateLimits().with_action("sendAttachMsg", nim.Rate(1, 60))
ATTACH = f"{APP_KEY}:msg/sendAttachMsg"
# Real seconds: the longest a call that must not wait may take (a busy machine
# included), and max_waits far longer than that.
PATIENCE = 5.0
LONG_WAIT = 120.0
# Far longer than PATIENCE, shorter than the slots the tests keep out of reach.
SHORT_OF_THE_SLOT = 40.0
MOMENT = 0.05


def _virtual(emulator: NimEmulator, limits: nim.RateLimits, **options: object) -> nim.NimClient:
    """A client whose LocalLimiter reads a FakeClock (``client.limiter._clock``)."""
    limiter = nim.LocalLimiter(clock=FakeClock(), poll_interval=0.001)
    return make_client(emulator, rate_limits=limits, limiter=limiter, **options)


async def _calls(emulator: NimEmulator, count: int) -> None:
    """Return once the emulator has seen ``count`` calls (within PATIENCE)."""
    with anyio.fail_after(PATIENCE):
        while len(emulator.calls) < count:  # noqa: ASYNC110 - the emulator has no event
            await anyio.sleep(0.005)


def _clock(client: nim.NimClient) -> FakeClock:
    clock = client.limiter._clock  # type: ignore[attr-defined]
    assert isinstance(clock, FakeClock)
    return clock


async def test_a_call_that_would_wait_past_max_wait_fails_unsent() -> None:
    """The budget is spent for a minute: SlotTimeout at once, saying the minute; nothing sent."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with make_client(emulator, rate_limits=ONE_A_MINUTE) as client:
        await client.send_attach_msg("alice", "bob", "first")
        hasty = client.with_options(max_wait=0.2)
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
            await hasty.send_attach_msg("alice", "bob", "second")
    assert 60 - PATIENCE < caught.value.retry_after <= 60
    assert "not sent" in str(caught.value)
    assert "msg/sendAttachMsg" in str(caught.value)
    assert len(emulator.calls) == 1


async def test_a_far_slot_fails_at_once_with_its_exact_distance() -> None:
    """Answered 8 s ago in a 60 s window, max_wait 40 s: at once, and retry_after is 52."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with _virtual(emulator, ONE_A_MINUTE, max_wait=SHORT_OF_THE_SLOT) as client:
        await client.send_attach_msg("alice", "bob", "first")
        _clock(client).advance(8)
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
            await client.send_attach_msg("alice", "bob", "second")
    assert caught.value.retry_after == 52
    assert len(emulator.calls) == 1


async def test_a_slot_held_by_a_call_in_flight_is_at_least_per_away() -> None:
    """The call holding the only slot has no answer yet: its window ends per from now at the
    earliest, so retry_after is per (a lower bound, and the true one if it is answered now)."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with _virtual(emulator, ONE_A_MINUTE, max_wait=SHORT_OF_THE_SLOT) as client:
        limits = ONE_A_MINUTE.for_action("msg/sendAttachMsg")
        async with client.limiter.slot(ATTACH, limits, hold=10):
            _clock(client).advance(1000)
            with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
                await client.send_attach_msg("alice", "bob", "x")
    assert caught.value.retry_after == 60
    assert emulator.calls == []


async def test_a_block_beyond_max_wait_fails_at_once_with_its_end() -> None:
    """After a 416 the action is blocked for an hour: the next call is told the hour."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with _virtual(emulator, ONE_A_MINUTE) as client:
        limits = ONE_A_MINUTE.for_action("msg/sendAttachMsg")
        await client.limiter.block(ATTACH, limits, 3600)
        _clock(client).advance(600)
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
            await client.send_attach_msg("alice", "bob", "x")
    assert caught.value.retry_after == 3000
    assert emulator.calls == []


async def test_a_near_slot_is_waited_for_and_the_call_goes() -> None:
    """The slot frees 60 s (virtual) from now and max_wait allows that: the call waits."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with _virtual(emulator, ONE_A_MINUTE, max_wait=LONG_WAIT) as client:
        await client.send_attach_msg("alice", "bob", "first")
        async with anyio.create_task_group() as group:
            group.start_soon(client.send_attach_msg, "alice", "bob", "second")
            await anyio.sleep(MOMENT)
            assert len(emulator.calls) == 1
            _clock(client).advance(60)
    assert [message.attach for message in emulator.messages] == ["first", "second"]


async def test_waiters_behind_others_fail_at_once_too() -> None:
    """Queued behind a waiter served first, a call's slot comes a window after that one's."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with _virtual(emulator, ONE_A_MINUTE, max_wait=LONG_WAIT) as client:
        await client.send_attach_msg("alice", "bob", "first")
        _clock(client).advance(30)
        hasty = client.with_options(max_wait=20)
        async with anyio.create_task_group() as group:
            group.start_soon(client.send_attach_msg, "alice", "bob", "patient")
            await anyio.sleep(MOMENT)
            with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
                await hasty.send_attach_msg("alice", "bob", "hasty")
            _clock(client).advance(30)
    # The patient call takes the slot freed at 60 s; the next frees a minute after it.
    assert caught.value.retry_after == 90
    assert [message.attach for message in emulator.messages] == ["first", "patient"]


async def test_a_queue_longer_than_the_bound_is_refused_at_once_from_its_place() -> None:
    """Three slots in ten seconds, all taken, max_wait 15 s: of six callers queued at once,
    the first three wait for the slots freeing at 10 s; the other three would start at
    20 s at the earliest and are refused at once, told so (a handler answers 429 now,
    not after waiting its max_wait)."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limits = nim.RateLimits().with_action("sendAttachMsg", nim.Rate(3, 10))
    refused: list[float] = []

    async def call(client: nim.NimClient, n: int) -> None:
        try:
            await client.send_attach_msg("alice", "bob", f"queued {n}")
        except nim.SlotTimeout as error:
            refused.append(error.retry_after)

    async with _virtual(emulator, limits, max_wait=15) as client:
        for n in range(3):
            await client.send_attach_msg("alice", "bob", f"first {n}")
        async with anyio.create_task_group() as group:
            for n in range(6):
                group.start_soon(call, client, n)
                await anyio.sleep(MOMENT)
            with anyio.fail_after(PATIENCE):
                while len(refused) < 3:  # noqa: ASYNC110 - no event to wait for
                    await anyio.sleep(MOMENT)
            assert len(emulator.calls) == 3
            _clock(client).advance(10)
    assert refused == [20, 20, 20]
    assert [m.attach for m in emulator.messages][3:] == ["queued 0", "queued 1", "queued 2"]


async def test_the_default_max_wait_refuses_a_day_long_wait() -> None:
    """job/nos/del allows five calls a day: the sixth fails at once, hours to wait, unsent."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with _virtual(emulator, nim.RateLimits.default(), max_wait=DEFAULT_MAX_WAIT) as client:
        assert client.max_wait == DEFAULT_MAX_WAIT == 10.0
        for _ in range(5):
            await client.clean_nos_files(*past_nos_range())
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
            await client.clean_nos_files(*past_nos_range())
    assert caught.value.retry_after == 86400
    assert len(emulator.calls) == 5


def test_the_default_is_ten_seconds_and_none_is_unbounded() -> None:
    """NimClient(max_wait=...) defaults to DEFAULT_MAX_WAIT; None waits as long as needed."""
    assert nim.NimClient(APP_KEY, APP_SECRET).max_wait == DEFAULT_MAX_WAIT
    assert nim.NimClient(APP_KEY, APP_SECRET, max_wait=None).max_wait is None


async def test_an_unbounded_client_waits_for_a_far_slot() -> None:
    """max_wait=None: the call is kept waiting, not refused."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with _virtual(emulator, ONE_A_MINUTE, max_wait=None) as client:
        await client.send_attach_msg("alice", "bob", "first")
        with anyio.move_on_after(MOMENT) as waiting:
            await client.send_attach_msg("alice", "bob", "second")
        assert waiting.cancelled_caught
    assert len(emulator.calls) == 1


async def test_with_options_keeps_the_client_max_wait_unless_given() -> None:
    """with_options() keeps max_wait; max_wait=None unbounds the view only; a set value takes
    effect from the next call."""
    client = make_client(max_wait=3.0)
    assert client.with_options().max_wait == 3.0
    assert client.with_options(max_wait=None).max_wait is None
    assert client.max_wait == 3.0
    client.max_wait = 1.5
    assert client.max_wait == 1.5
    with pytest.raises(nim.ConfigurationError, match="max_wait"):
        client.max_wait = 0
    assert client.max_wait == 1.5
    await client.aclose()


async def test_bulk_chunks_wait_a_batch_window_despite_a_small_max_wait() -> None:
    """One batch call a minute, max_wait 0.1 s: the second chunk waits the minute and goes."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limits = nim.RateLimits().with_action("sendBatchAttachMsg", nim.Rate(1, 60), block=60)
    result: list[nim.BatchResult] = []

    async def job(client: nim.NimClient) -> None:
        sent = await client.send_batch_attach_msg("alice", ["a", "b"], "x", max_concurrency=1)
        result.append(sent)

    async with (
        _virtual(emulator, limits, max_wait=0.1, batch_size=1) as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(job, client)
        await _calls(emulator, 1)
        await anyio.sleep(0.3)  # three times the client's max_wait
        assert len(emulator.calls) == 1
        _clock(client).advance(60)
    assert result[0].ok
    assert [call.code for call in emulator.calls] == [200, 200]


async def test_bulk_chunks_fail_at_once_beyond_a_window_and_a_block() -> None:
    """A block of an hour is beyond the longest per (60 s) plus the block (60 s): the chunk
    fails at once with SlotTimeout, unsent."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limits = nim.RateLimits().with_action("sendBatchAttachMsg", nim.Rate(1, 60), block=60)
    async with _virtual(emulator, limits, max_wait=0.1) as client:
        action = limits.for_action("msg/sendBatchAttachMsg")
        await client.limiter.block(f"{APP_KEY}:msg/sendBatchAttachMsg", action, 3600)
        with anyio.fail_after(PATIENCE):
            result = await client.send_batch_attach_msg("alice", ["a"], "x")
    (failed,) = result.failed
    assert isinstance(failed.error, nim.SlotTimeout)
    assert failed.error.retry_after == 3600
    assert emulator.calls == []


async def test_a_fail_fast_view_stops_a_bulk_job_at_the_first_far_slot() -> None:
    """On a view with max_wait 0.1 s, a chunk whose slot is a minute away is refused at once
    and stops the job: the rest is surely unsent and no chunk waits its turn to fail."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limits = nim.RateLimits().with_action("sendBatchAttachMsg", nim.Rate(2, 60), block=60)
    recipients = [f"u{n}" for n in range(10)]
    async with _virtual(emulator, limits, batch_size=1) as client:
        with anyio.fail_after(PATIENCE):
            result = await client.with_options(max_wait=0.1).send_batch_attach_msg(
                "alice", recipients, "x", max_concurrency=1
            )
    assert isinstance(result.stopped, nim.SlotTimeout)
    assert result.stopped.retry_after == pytest.approx(60, abs=1)
    assert result.accepted == 2
    assert [a for chunk in result.failed for a in chunk.accids] == recipients[2:]
    assert not any(chunk.may_have_been_sent for chunk in result.failed)
    assert len(emulator.calls) == 2


@pytest.mark.parametrize("rate_limits", [nim.RateLimits.default(), None], ids=["limited", "none"])
async def test_a_416_blocking_a_day_raises_rate_limited_at_once(
    rate_limits: nim.RateLimits | None,
) -> None:
    """job/nos/del is blocked a day after a 416: no retry sleeps it out, with or without
    client-side limits; RateLimited says the day."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next("job/nos/del", 416)
    async with _virtual(
        emulator, nim.RateLimits.default(), retry=nim.RetryPolicy(), max_wait=None
    ) as client:
        client.rate_limits = rate_limits
        with anyio.fail_after(PATIENCE), pytest.raises(nim.RateLimited) as caught:
            await client.clean_nos_files(*past_nos_range())
    assert caught.value.retry_after == 86400
    assert len(emulator.calls) == 1


async def test_a_416_blocking_longer_than_max_wait_is_not_retried() -> None:
    """A broadcast's 60 s block is within the retry policy's bound but beyond max_wait 10 s:
    RateLimited(retry_after=60) at once, the next call refused at once by the limiter."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next("msg/broadcastMsg", 416)
    async with _virtual(
        emulator, nim.RateLimits.default(), retry=nim.RetryPolicy(), max_wait=10
    ) as client:
        with anyio.fail_after(PATIENCE), pytest.raises(nim.RateLimited) as caught:
            await client.broadcast("hello")
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as later:
            await client.broadcast("hello again")
    assert caught.value.retry_after == 60
    assert later.value.retry_after == 60
    assert len(emulator.calls) == 1


async def test_a_416_within_every_bound_is_waited_out_and_retried() -> None:
    """A 10 s block, max_wait 60 s: the retry waits for the block in the limiter and goes."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next("msg/sendAttachMsg", 416)
    async with (
        _virtual(
            emulator, nim.RateLimits.default(), retry=nim.RetryPolicy(), max_wait=LONG_WAIT
        ) as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(client.send_attach_msg, "alice", "bob", "x")
        await _calls(emulator, 1)
        await anyio.sleep(MOMENT)  # the retry is kept waiting for the block
        assert [call.code for call in emulator.calls] == [416]
        _clock(client).advance(10)
    assert [call.code for call in emulator.calls] == [416, 200]


async def test_a_rate_limited_without_retries_left_says_its_block() -> None:
    """RateLimited carries retry_after whenever the block is known, retries spent or not."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next("msg/sendMsg", 416)
    async with make_client(
        emulator,
        rate_limits=nim.RateLimits.default().scaled(0.01),
        retry=nim.RetryPolicy(max_attempts=1),
    ) as client:
        with pytest.raises(nim.RateLimited) as caught:
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.retry_after == pytest.approx(0.1)


async def test_a_view_shares_the_pool_budget_and_lifecycle() -> None:
    """The view draws on the same budget, and closing the client closes the view."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    client = make_client(emulator, rate_limits=ONE_A_MINUTE)
    view = client.with_options(max_wait=0.2)
    await view.send_attach_msg("alice", "bob", "through the view")
    with pytest.raises(nim.SlotTimeout):
        await client.with_options(max_wait=0.1).send_attach_msg("alice", "bob", "again")
    assert client.limiter_stats()["msg/sendAttachMsg"].calls == 1
    await client.aclose()
    with pytest.raises(nim.ClientStateError):
        await view.send_attach_msg("alice", "bob", "after close")
    assert len(emulator.calls) == 1


async def test_closing_the_client_ends_a_bounded_wait_unsent() -> None:
    """A call waiting for its slot when the client closes raises ClientStateError."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    client = _virtual(emulator, ONE_A_MINUTE, max_wait=LONG_WAIT)
    await client.send_attach_msg("alice", "bob", "first")
    ended: list[BaseException] = []

    async def second() -> None:
        try:
            await client.send_attach_msg("alice", "bob", "second")
        except nim.NimError as error:
            ended.append(error)

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            group.start_soon(second)
            await anyio.sleep(MOMENT)
            await client.aclose()
    assert [type(error) for error in ended] == [nim.ClientStateError]
    assert len(emulator.calls) == 1


class _NeverFree:
    """A limiter of the user's own that knows nothing of max_wait: every wait is for ever."""

    @asynccontextmanager
    async def slot(self, key: str, limits: nim.ActionLimits, *, hold: float) -> AsyncIterator[None]:
        await anyio.sleep_forever()
        yield  # pragma: no cover

    async def block(self, key: str, limits: nim.ActionLimits, seconds: float) -> None:
        pass


async def test_a_limiter_of_your_own_is_cut_off_at_max_wait_as_before() -> None:
    """A Limiter that cannot tell how far its slot is: SlotTimeout after max_wait, with
    max_wait as the hint."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with make_client(
        emulator, rate_limits=ONE_A_MINUTE, limiter=_NeverFree(), max_wait=0.1
    ) as client:
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
            await client.send_attach_msg("alice", "bob", "x")
    assert caught.value.retry_after == 0.1
    assert emulator.calls == []


async def test_without_max_wait_a_call_waits_as_before(emulator: NimEmulator) -> None:
    """with_options() keeps the client's settings; a free slot is taken at once."""
    async with make_client(emulator) as client:
        await client.with_options().send_attach_msg("alice", "bob", "x")
    assert [call.code for call in emulator.calls] == [200]


@pytest.mark.parametrize("max_wait", [0, -1, float("inf"), "2", True])
def test_a_bad_max_wait_is_a_configuration_error(max_wait: object) -> None:
    """A positive number of seconds, or None: for the client and for a view."""
    with pytest.raises(nim.ConfigurationError, match="max_wait"):
        make_client().with_options(max_wait=max_wait)  # type: ignore[arg-type]
    with pytest.raises(nim.ConfigurationError, match="max_wait"):
        make_client(max_wait=max_wait)


def test_slot_timeout_round_trips_through_pickle() -> None:
    """Like every public exception."""
    error = nim.SlotTimeout("no slot", retry_after=2.0)
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.retry_after) == ("no slot", 2.0)
