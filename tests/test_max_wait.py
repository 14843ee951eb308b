"""Fail fast in request handlers: a view of the client that waits at most max_wait for a slot."""

from __future__ import annotations

import pickle

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

ONE_A_MINUTE = nim.RateLimits().with_action("sendAttachMsg", nim.Rate(1, 60))


async def test_a_call_that_would_wait_past_max_wait_fails_unsent() -> None:
    """The budget is spent for a minute: SlotTimeout after max_wait, nothing on the wire."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with make_client(emulator, rate_limits=ONE_A_MINUTE) as client:
        await client.send_attach_msg("alice", "bob", "first")
        hasty = client.with_options(max_wait=0.2)
        with pytest.raises(nim.SlotTimeout) as caught:
            await hasty.send_attach_msg("alice", "bob", "second")
    assert caught.value.retry_after == 0.2
    assert "not sent" in str(caught.value)
    assert len(emulator.calls) == 1


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


async def test_without_max_wait_a_call_waits_as_before(emulator: NimEmulator) -> None:
    """with_options() keeps the client's settings; a free slot is taken at once."""
    async with make_client(emulator) as client:
        await client.with_options().send_attach_msg("alice", "bob", "x")
    assert [call.code for call in emulator.calls] == [200]


@pytest.mark.parametrize("max_wait", [0, -1, float("inf"), "2", True])
def test_a_bad_max_wait_is_a_configuration_error(max_wait: object) -> None:
    """A positive number of seconds, or None."""
    with pytest.raises(nim.ConfigurationError, match="max_wait"):
        make_client().with_options(max_wait=max_wait)  # type: ignore[arg-type]


def test_slot_timeout_round_trips_through_pickle() -> None:
    """Like every public exception."""
    error = nim.SlotTimeout("no slot", retry_after=2.0)
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.retry_after) == ("no slot", 2.0)
