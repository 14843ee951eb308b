"""NimClient's lifecycle, its logging, and the app secret kept out of everything."""

from __future__ import annotations

import logging
import traceback

import anyio
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio


async def test_a_closed_client_refuses_to_be_used(emulator: NimEmulator) -> None:
    """After aclose() every call and re-entry raise instead of opening a new pool."""
    client = make_client(emulator, rate_limits=nim.RateLimits.default(), retry=nim.RetryPolicy())
    await client.send_msg("alice", "bob", nim.Text("before"))
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.send_msg("alice", "bob", nim.Text("after"))
    with pytest.raises(RuntimeError, match="closed"):
        async with client:
            pass
    assert len(emulator.calls) == 1


async def test_works_as_an_async_context_manager(emulator: NimEmulator) -> None:
    """async with opens and closes the client."""
    async with make_client(
        emulator, rate_limits=nim.RateLimits.default(), retry=nim.RetryPolicy()
    ) as client:
        await client.send_attach_msg("alice", "bob", "x")
    with pytest.raises(RuntimeError):
        await client.send_attach_msg("alice", "bob", "x")


async def test_one_debug_line_per_attempt_with_action_outcome_attempt_and_time(
    client: nim.NimClient, emulator: NimEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The nim_async logger writes one DEBUG line per attempt."""
    caplog.set_level(logging.DEBUG, logger="nim_async")
    emulator.fail_next("msg/sendMsg", 404)
    with pytest.raises(nim.NotFound):
        await client.send_msg("alice", "bob", nim.Text("hi"))
    await client.send_msg("alice", "bob", nim.Text("hi"))
    lines = [record.getMessage() for record in caplog.records if record.name == "nim_async"]
    assert len(lines) == 2
    assert lines[0].startswith("action=msg/sendMsg attempt=1 outcome=404 elapsed_ms=")
    assert "outcome=200" in lines[1]


async def test_one_warning_per_server_block_however_many_calls_meet_it(
    emulator: NimEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Eight calls answered 416 within one block log one WARNING; a later block logs its own."""
    caplog.set_level(logging.WARNING, logger="nim_async")
    client = make_client(
        emulator, rate_limits=nim.RateLimits.default().scaled(0.02), retry=nim.RetryPolicy()
    )
    async with client:
        async with anyio.create_task_group() as group:
            # Answered together: each of the eight is in flight when the first 416 comes.
            emulator.set_latency(0.1, "msg/sendAttachMsg")
            emulator.fail_next("msg/sendAttachMsg", 416, count=8, after=True)
            for n in range(8):
                group.start_soon(client.send_attach_msg, "alice", f"u{n}", "x")
        # The retries came after the block: the next 416 is a block of its own.
        emulator.fail_next("msg/sendAttachMsg", 416, after=True)
        await client.send_attach_msg("alice", "bob", "x")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        warnings
        == ["action=msg/sendAttachMsg blocked by the server (code 416): no call for 0.2 s"] * 2
    )
    answered = [c.code for c in emulator.calls]
    assert (answered.count(416), answered.count(200)) == (9, 9)


async def test_the_secret_never_appears_in_reprs_logs_errors_or_tracebacks(
    emulator: NimEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """repr, every log line, every error message and the formatted traceback omit the secret."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with make_client(emulator, retry=nim.RetryPolicy()) as client:
        texts.append(repr(client))
        for code in (414, 500):
            emulator.fail_next("msg/sendMsg", code)
            try:
                await client.send_msg("alice", "bob", nim.Text("hi"))
            except nim.NimError as error:
                texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
        emulator.fail_next_http("msg/sendMsg", 502)
        try:
            await client.send_msg("alice", "bob", nim.Text("hi"))
        except nim.ServerError as error:
            texts += [str(error), "".join(traceback.format_exception(error))]
    texts += [record.getMessage() for record in caplog.records]
    assert len(texts) >= 8
    assert not [text for text in texts if APP_SECRET in text]


async def test_the_overseas_and_china_urls_are_the_documented_ones() -> None:
    """facts: api.netease.im (default) and api-sg.netease.im."""
    assert nim.CHINA_URL == "https://api.netease.im/nimserver/"
    assert nim.OVERSEAS_URL == "https://api-sg.netease.im/nimserver/"
    client = nim.NimClient(APP_KEY, APP_SECRET)
    assert "api.netease.im" in repr(client)
    await client.aclose()
