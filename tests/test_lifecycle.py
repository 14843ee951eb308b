"""The client's life: one event loop, a close that tells queued calls they were not sent,
and log lines at the levels operators watch."""

from __future__ import annotations

import asyncio
import logging
import threading

import anyio
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_SECRET, make_client


def test_a_client_used_from_a_second_event_loop_refuses_before_sending() -> None:
    """A second asyncio.run gets ClientStateError saying what to do; nothing is sent."""
    emulator = NimEmulator("test-app-key", APP_SECRET)
    client = make_client(emulator)

    async def send() -> None:
        await client.send_attach_msg("alice", "bob", "x")

    asyncio.run(send())
    for _ in range(3):
        with pytest.raises(nim.ClientStateError, match="one client per event loop"):
            asyncio.run(send())
    assert len(emulator.calls) == 1


def test_a_client_used_from_another_thread_refuses_before_sending() -> None:
    """Another thread runs its own loop: refused the same way, never a raw RuntimeError."""
    emulator = NimEmulator("test-app-key", APP_SECRET)
    client = make_client(emulator)
    errors: list[BaseException] = []

    async def send() -> None:
        await client.send_attach_msg("alice", "bob", "x")

    def in_thread() -> None:
        try:
            asyncio.run(send())
        except BaseException as error:
            errors.append(error)

    asyncio.run(send())
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(30)
    (error,) = errors
    assert isinstance(error, nim.ClientStateError)
    assert len(emulator.calls) == 1


@pytest.mark.anyio
async def test_closing_the_client_fails_the_calls_queued_for_a_slot_as_unsent() -> None:
    """aclose() with calls waiting in the limiter: each gets ClientStateError; one call went."""
    emulator = NimEmulator("test-app-key", APP_SECRET)
    limits = nim.RateLimits().with_action("sendAttachMsg", nim.Rate(1, 60))
    # Unbounded waits: with a max_wait the calls would fail at once instead of queueing.
    client = make_client(emulator, rate_limits=limits, max_wait=None)
    outcomes: list[BaseException | None] = []

    async def send(number: int) -> None:
        try:
            await client.send_attach_msg("alice", f"u{number}", "x")
            outcomes.append(None)
        except nim.NimError as error:
            outcomes.append(error)

    await send(0)  # takes the only slot of the next 60 s
    async with anyio.create_task_group() as group:
        for number in range(1, 6):
            group.start_soon(send, number)
        # Give them time to queue in the limiter; one that has not got there
        # yet meets the closed client instead: unsent all the same.
        await anyio.sleep(0.2)
        await client.aclose()
    assert outcomes.count(None) == 1
    refused = [error for error in outcomes if error is not None]
    assert len(refused) == 5
    assert all(isinstance(error, nim.ClientStateError) for error in refused)
    assert all("was not sent" in str(e) or "nothing was sent" in str(e) for e in refused)
    assert len(emulator.calls) == 1


@pytest.mark.anyio
async def test_a_server_block_is_logged_at_warning_and_a_retry_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """416 is what operators must see; a retry is worth an INFO line; no secret anywhere."""
    caplog.set_level(logging.INFO, logger="nim_async")
    emulator = NimEmulator("test-app-key", APP_SECRET)
    emulator.fail_next("msg/recall", 500)
    emulator.fail_next("msg/sendAttachMsg", 416)
    limits = nim.RateLimits.default().scaled(0.001)
    async with make_client(emulator, rate_limits=limits) as client:
        await client.recall(1, 1, from_="alice", to="bob")
        await client.send_attach_msg("alice", "bob", "x")
    records = [r for r in caplog.records if r.name == "nim_async"]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert any("msg/sendAttachMsg" in line and "416" in line for line in warnings)
    assert any("msg/recall" in line and "retrying" in line for line in infos)
    assert all(APP_SECRET not in r.getMessage() for r in records)
