"""send_batch_msg and send_batch_attach_msg: the wire, chunking, merging, failures, progress."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

SEND_BATCH_MSG = "msg/sendBatchMsg"
SEND_BATCH_ATTACH_MSG = "msg/sendBatchAttachMsg"
Send = Callable[..., Awaitable[nim.BatchResult]]


def _send(client: nim.NimClient, action: str) -> Send:
    """The batch method behind ``action``, with its sender and content filled in."""
    if action == SEND_BATCH_MSG:
        return lambda to, **kw: client.send_batch_msg("alice", to, nim.Text("hi"), **kw)
    return lambda to, **kw: client.send_batch_attach_msg("alice", to, {"k": "v"}, **kw)


BOTH = pytest.mark.parametrize("action", [SEND_BATCH_MSG, SEND_BATCH_ATTACH_MSG])


def _accids(count: int) -> list[str]:
    return [f"user{i:05d}" for i in range(count)]


def _chunks_sent(emulator: NimEmulator) -> list[list[str]]:
    return [json.loads(call.form["toAccids"]) for call in emulator.calls]


@BOTH
async def test_a_successful_batch_returns_a_full_batch_result(
    client: nim.NimClient, emulator: NimEmulator, action: str
) -> None:
    """Every recipient accepted, nothing unregistered or failed, one call, ok."""
    result = await _send(client, action)(["bob", "carol", "dave"])
    assert result == nim.BatchResult(accepted=3, unregister=[], msgids={}, failed=[], calls=1)
    assert result.ok
    assert result.raise_for_failures() is None
    assert [call.action for call in emulator.calls] == [action]


async def test_a_batch_message_goes_out_as_from_accid_to_accids_type_and_body(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """fromAccid, toAccids as a JSON array, and the body's type and JSON; one delivery each."""
    await client.send_batch_msg("alice", ["bob", "张三"], nim.Text("你好"))
    (call,) = emulator.calls
    assert call.form == {
        "fromAccid": "alice",
        "toAccids": '["bob","张三"]',
        "type": "0",
        "body": '{"msg":"你好"}',
    }
    assert [(m.from_, m.to, m.type, m.body) for m in emulator.messages] == [
        ("alice", "bob", 0, '{"msg":"你好"}'),
        ("alice", "张三", 0, '{"msg":"你好"}'),
    ]


async def test_a_batch_notification_goes_out_as_from_accid_to_accids_and_attach(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A mapping attach is compact JSON; a notification has no type, body or msgid."""
    await client.send_batch_attach_msg("alice", ["bob", "carol"], {"event": "好友请求"})
    (call,) = emulator.calls
    assert call.form == {
        "fromAccid": "alice",
        "toAccids": '["bob","carol"]',
        "attach": '{"event":"好友请求"}',
    }
    assert [(m.to, m.attach, m.msgid) for m in emulator.messages] == [
        ("bob", '{"event":"好友请求"}', None),
        ("carol", '{"event":"好友请求"}', None),
    ]


async def test_every_send_batch_msg_keyword_reaches_the_server_under_its_nim_name(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Each sendBatchMsg parameter of the seed has a keyword, encoded as the seed says."""
    await client.send_batch_msg(
        "alice",
        ["bob"],
        nim.Custom({"k": 1}),
        return_msgid=True,
        option=nim.MessageOption(roam=False, push=True, need_push_nick=False),
        push=nim.Push("you have mail", {"deep": "link"}),
        msg_desc="a custom message",
        ext="ext-data",
        bid="business-1",
        use_yidun=False,
        yidun_anti_cheating={"hash": "x"},
        env="prod",
    )
    (call,) = emulator.calls
    assert call.code == 200
    assert json.loads(call.form.pop("option")) == {
        "roam": False,
        "push": True,
        "needPushNick": False,
    }
    assert call.form == {
        "fromAccid": "alice",
        "toAccids": '["bob"]',
        "type": "100",
        "body": '{"k":1}',
        "returnMsgid": "true",
        "pushcontent": "you have mail",
        "payload": '{"deep":"link"}',
        "msgDesc": "a custom message",
        "ext": "ext-data",
        "bid": "business-1",
        "useYidun": "0",
        "yidunAntiCheating": '{"hash":"x"}',
        "env": "prod",
    }


async def test_every_send_batch_attach_msg_keyword_reaches_the_server_under_its_nim_name(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Each sendBatchAttachMsg parameter of the seed has a keyword; offline=False is save=1."""
    await client.send_batch_attach_msg(
        "alice",
        ["bob"],
        "plain attach",
        offline=False,
        push=nim.Push("ping", {"p": 1}),
        sound="ding.aac",
        option=nim.MessageOption(badge=False, route=True),
        force_push=True,
        force_push_content="forced",
        env="staging",
    )
    (call,) = emulator.calls
    assert call.code == 200
    assert json.loads(call.form.pop("option")) == {"badge": False, "route": True}
    assert call.form == {
        "fromAccid": "alice",
        "toAccids": '["bob"]',
        "attach": "plain attach",
        "pushcontent": "ping",
        "payload": '{"p":1}',
        "sound": "ding.aac",
        "save": "1",
        "isForcePush": "true",
        "forcePushContent": "forced",
        "env": "staging",
    }


@BOTH
@pytest.mark.parametrize("as_string", [True, False], ids=["unregister-string", "unregister-list"])
async def test_unregistered_recipients_are_merged_in_input_order_from_either_shape(
    action: str, as_string: bool
) -> None:
    """Unknown accids from every chunk, in input order, whichever shape the server used."""
    emulator = NimEmulator(
        APP_KEY, APP_SECRET, accounts=["alice", "b", "d", "e"], unregister_as_string=as_string
    )
    async with make_client(emulator, batch_size=2) as client:
        result = await _send(client, action)(["x1", "b", "d", "x2", "x3", "e", "x4"])
    assert isinstance(emulator.calls[0].answer, dict)
    assert isinstance(emulator.calls[0].answer["unregister"], str) is as_string
    assert result.unregister == ["x1", "x2", "x3", "x4"]
    assert (result.accepted, result.calls, result.ok) == (3, 4, True)
    assert sorted(m.to for m in emulator.messages) == ["b", "d", "e"]


async def test_return_msgid_gives_the_msgid_of_every_registered_recipient() -> None:
    """msgids maps each delivered recipient to the id the server stored; unknown ones have none."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, accounts=["alice", *_accids(150)])
    async with make_client(emulator) as client:
        result = await client.send_batch_msg(
            "alice", [*_accids(150), "ghost"], nim.Text("hi"), return_msgid=True
        )
    assert result.unregister == ["ghost"]
    assert result.accepted == 150
    assert result.msgids == {m.to: m.msgid for m in emulator.messages}
    assert sorted(result.msgids) == _accids(150)


@BOTH
async def test_1234_recipients_go_out_in_chunks_of_500_500_and_234(
    client: nim.NimClient, emulator: NimEmulator, action: str
) -> None:
    """Chunks of batch_size, each a contiguous slice of the input, every recipient once."""
    accids = _accids(1234)
    result = await _send(client, action)(accids)
    chunks = sorted(_chunks_sent(emulator), key=lambda chunk: accids.index(chunk[0]))
    assert [len(chunk) for chunk in chunks] == [500, 500, 234]
    assert [accid for chunk in chunks for accid in chunk] == accids
    assert (result.accepted, result.calls, result.ok) == (1234, 3, True)
    assert len(emulator.messages) == 1234


async def test_return_msgid_caps_chunks_at_100(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """The seed allows 100 recipients with returnMsgid=true: 250 go out as 100/100/50."""
    result = await client.send_batch_msg("alice", _accids(250), nim.Text("hi"), return_msgid=True)
    assert sorted((len(chunk) for chunk in _chunks_sent(emulator)), reverse=True) == [100, 100, 50]
    assert {call.form["returnMsgid"] for call in emulator.calls} == {"true"}
    assert len(result.msgids) == 250


@BOTH
async def test_an_async_generator_of_recipients_is_chunked_too(
    client: nim.NimClient, emulator: NimEmulator, action: str
) -> None:
    """`to` may be an AsyncIterable: read lazily, chunked like a list, total unknown."""

    async def recipients() -> AsyncIterator[str]:
        for accid in _accids(1100):
            yield accid

    progress: list[nim.Progress] = []
    result = await _send(client, action)(recipients(), on_progress=progress.append)
    assert sorted(len(chunk) for chunk in _chunks_sent(emulator)) == [100, 500, 500]
    assert (result.accepted, result.calls) == (1100, 3)
    assert {p.total for p in progress} == {None}
    assert progress[-1].done == 1100


@BOTH
@pytest.mark.parametrize("bad", ["", "x" * 33, 42], ids=["empty", "33-chars", "not-a-str"])
async def test_a_bad_accid_anywhere_in_a_list_is_refused_before_any_call(
    client: nim.NimClient, emulator: NimEmulator, action: str, bad: Any
) -> None:
    """The whole list is checked first: a bad accid at position 900 sends nothing at all."""
    accids: list[Any] = _accids(1000)
    accids[900] = bad
    with pytest.raises(nim.InvalidRequest) as caught:
        await _send(client, action)(accids)
    assert caught.value.parameter == "toAccids"
    assert "900" in str(caught.value)
    assert emulator.calls == []


async def test_a_bad_accid_from_an_async_generator_fails_alone_with_its_input_position(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A lazy input cannot be checked up front: the bad accid fails unsent, the rest goes out."""

    async def recipients() -> AsyncIterator[str]:
        for accid in _accids(600):
            yield accid
        yield "x" * 33

    result = await client.send_batch_msg("alice", recipients(), nim.Text("hi"), max_concurrency=1)
    (failed,) = result.failed
    assert isinstance(failed.error, nim.InvalidRequest)
    assert failed.accids == ("x" * 33,)
    assert "at position 600" in str(failed.error)
    assert not failed.may_have_been_sent
    assert (result.accepted, result.calls, len(emulator.calls)) == (600, 2, 2)
    assert result.resendable() == []


@BOTH
async def test_a_plain_string_as_to_is_refused(
    client: nim.NimClient, emulator: NimEmulator, action: str
) -> None:
    """A str is an iterable of characters, never a recipient list: InvalidRequest, no call."""
    with pytest.raises(nim.InvalidRequest) as caught:
        await _send(client, action)("bob")
    assert caught.value.parameter == "toAccids"
    assert emulator.calls == []


FAILURES = [
    pytest.param(500, True, nim.ServerError, True, 1234, id="500-after-carried-out"),
    # 419 (count over limit) refuses one call; a 414 would stop the whole job.
    pytest.param(419, False, nim.NimAPIError, False, 734, id="419-refused"),
]


@BOTH
@pytest.mark.parametrize(("code", "after", "error", "maybe_sent", "delivered"), FAILURES)
async def test_a_failed_chunk_is_reported_with_its_accids_and_the_others_still_go_out(
    emulator: NimEmulator,
    action: str,
    code: int,
    after: bool,
    error: type[nim.NimAPIError],
    maybe_sent: bool,
    delivered: int,
) -> None:
    """The failing chunk lands in failed (not retried); every recipient is in exactly one place."""
    accids = _accids(1234)
    emulator.fail_next(action, code, after=after)
    async with make_client(emulator) as client:
        result = await _send(client, action)(accids, max_concurrency=1)
    (failed,) = result.failed
    assert failed.accids == tuple(accids[:500])
    assert type(failed.error) is error
    assert (failed.error.code, failed.error.action) == (code, action)
    assert failed.may_have_been_sent is maybe_sent
    assert (result.accepted, result.calls, result.ok) == (734, 3, False)
    assert result.accepted + len(result.unregister) + result.failed_count == len(accids)
    assert [call.code for call in emulator.calls] == [code, 200, 200]
    assert len(emulator.messages) == delivered


@BOTH
async def test_raise_for_failures_raises_batch_failed_carrying_the_result(
    client: nim.NimClient, emulator: NimEmulator, action: str
) -> None:
    """BatchFailed is a NimError holding the whole result, failed chunks included."""
    emulator.fail_next(action, 503)
    result = await _send(client, action)(_accids(600), max_concurrency=1)
    with pytest.raises(nim.BatchFailed) as caught:
        result.raise_for_failures()
    assert isinstance(caught.value, nim.NimError)
    assert caught.value.result is result
    assert "1 of 2 batch calls failed (500 recipients)" in str(caught.value)


@BOTH
async def test_on_progress_is_called_after_every_chunk(
    client: nim.NimClient, emulator: NimEmulator, action: str
) -> None:
    """Progress(done, total, failed_chunks) after each chunk, failed chunks counted as done."""
    emulator.fail_next(action, 419)
    progress: list[nim.Progress] = []
    await _send(client, action)(_accids(1234), max_concurrency=1, on_progress=progress.append)
    # Before the first call, then after each chunk (a slow run may add a tick: same counts).
    counts = [(p.done, p.total, p.failed_chunks) for p in progress]
    assert list(dict.fromkeys(counts)) == [
        (0, 1234, 0),
        (500, 1234, 1),
        (1000, 1234, 1),
        (1234, 1234, 1),
    ]
    # No client-side limits: one call at a time, three calls at the first guess of an answer.
    assert progress[0].eta == pytest.approx(3 * 0.05)
    assert all(p.rate is not None and p.rate > 0 for p in progress[1:])
    assert progress[-1].eta == 0.0
