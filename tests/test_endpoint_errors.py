"""The error and retry behaviour of all eleven endpoints, from one table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import past_nos_range

pytestmark = pytest.mark.anyio

Call = Callable[[nim.NimClient], Awaitable[object]]
ENDPOINTS: dict[str, Call] = {
    "msg/sendMsg": lambda c: c.send_msg("alice", "bob", nim.Text("hi")),
    "msg/sendBatchMsg": lambda c: c.send_batch_msg("alice", ["bob"], nim.Text("hi")),
    "msg/sendAttachMsg": lambda c: c.send_attach_msg("alice", "bob", "x"),
    "msg/sendBatchAttachMsg": lambda c: c.send_batch_attach_msg("alice", ["bob"], "x"),
    "msg/upload": lambda c: c.upload(b"file"),
    "msg/fileUpload": lambda c: c.file_upload(b"file"),
    "job/nos/del": lambda c: c.clean_nos_files(*past_nos_range()),
    "msg/recall": lambda c: c.recall(1, 1_600_000_000_000, from_="alice", to="bob"),
    "msg/broadcastMsg": lambda c: c.broadcast("abc"),
    "msg/delMsgOneWay": lambda c: c.delete_msg_one_way(1, 1_600_000_000_000, from_="a", to="b"),
    "msg/delRoamSession": lambda c: c.delete_roam_session("alice", "bob"),
}
BATCH = {"msg/sendBatchMsg", "msg/sendBatchAttachMsg"}


@pytest.mark.parametrize("action", sorted(ENDPOINTS))
async def test_an_error_code_raises_its_class_with_code_desc_and_the_nim_action(
    client: nim.NimClient, emulator: NimEmulator, action: str
) -> None:
    """403 is PermissionDenied naming the NIM action; a batch reports it in its failed chunk."""
    emulator.fail_next(action, 403, desc="no permission")
    if action in BATCH:
        result = await ENDPOINTS[action](client)
        assert isinstance(result, nim.BatchResult)
        error: Any = result.failed[0].error
    else:
        with pytest.raises(nim.NimAPIError) as caught:
            await ENDPOINTS[action](client)
        error = caught.value
    assert type(error) is nim.PermissionDenied
    assert (error.code, error.desc, error.action) == (403, "no permission", action)
    assert len(emulator.calls) == 1


IDEMPOTENT = [
    "msg/upload",
    "msg/fileUpload",
    "msg/recall",
    "msg/delMsgOneWay",
    "msg/delRoamSession",
]
NOT_IDEMPOTENT = ["msg/sendMsg", "msg/sendAttachMsg", "msg/broadcastMsg", "job/nos/del"]
AFTER = pytest.mark.parametrize("after", [False, True], ids=["refused", "carried-out"])


@AFTER
@pytest.mark.parametrize("action", IDEMPOTENT)
async def test_an_ambiguous_failure_of_an_idempotent_action_is_retried(
    client: nim.NimClient, emulator: NimEmulator, action: str, after: bool
) -> None:
    """Repeating it does no harm: a 500 is followed by a second call that succeeds."""
    emulator.fail_next(action, 500, after=after)
    await ENDPOINTS[action](client)
    assert [(call.action, call.code) for call in emulator.calls] == [(action, 500), (action, 200)]


@AFTER
@pytest.mark.parametrize("action", NOT_IDEMPOTENT)
async def test_an_ambiguous_failure_of_a_non_idempotent_action_is_not_retried(
    client: nim.NimClient, emulator: NimEmulator, action: str, after: bool
) -> None:
    """A second send, broadcast or clean-up task could happen twice: one call, ServerError."""
    emulator.fail_next(action, 500, after=after)
    with pytest.raises(nim.ServerError) as caught:
        await ENDPOINTS[action](client)
    assert (caught.value.code, caught.value.action) == (500, action)
    assert len(emulator.calls) == 1
