"""The validation table, walked rule by rule at its boundary.

For every rule: the boundary value is accepted by the client and the emulator;
one past it is refused by the client with nothing sent, and refused by the
emulator with 414 when the client's check is switched off ("sent raw").
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

import nim_async as nim
from nim_async import _bulk, _pipeline
from nim_async._validate import validate
from nim_async.testing import NimEmulator

from ._support import china_midnight

pytestmark = pytest.mark.anyio

Call = Callable[[nim.NimClient, Any], Awaitable[None]]
VALUE = object()  # marks the argument a row varies
DAY = 24 * 60 * 60 * 1000


DEFAULTS: dict[str, dict[str, Any]] = {
    "send_msg": {"from_": "alice", "to": "bob", "body": nim.Text("hi")},
    "send_attach_msg": {"from_": "alice", "to": "bob", "attach": "x"},
    "send_batch_msg": {"from_": "alice", "to": ["bob"], "body": nim.Text("hi")},
    "send_batch_attach_msg": {"from_": "alice", "to": ["bob"], "attach": "x"},
    "upload": {"content": b"x"},
    "file_upload": {"content": b"x"},
    "clean_nos_files": {"window": (-3 * DAY, -DAY)},
    "recall": {"msgid": 1, "timetag": 1, "from_": "alice", "to": "bob"},
    "broadcast": {"body": "hi"},
    "delete_msg_one_way": {"msgid": 1, "timetag": 1, "from_": "alice", "to": "bob"},
    "delete_roam_session": {"from_": "alice", "to": "bob"},
    "query_session_msg": {"from_": "alice", "to": "bob", "begin": 1, "end": 2},
}


def call(method: str, **fixed: Any) -> Call:
    """Call ``method`` with its defaults, ``fixed``, and the tested value where VALUE stands."""

    async def run(client: nim.NimClient, value: Any) -> None:
        args = {**DEFAULTS[method], **fixed}
        key = next(name for name, given in args.items() if given is VALUE)
        args[key] = value
        if "window" in args:
            # Offsets from China's midnight, read now: a run that crosses
            # midnight moves the window with the day.
            today = int(china_midnight().timestamp() * 1000)
            args["start"], args["end"] = (today + offset for offset in args.pop("window"))
        result = await getattr(client, method)(**args)
        if isinstance(result, nim.BatchResult) and result.failed:
            raise result.failed[0].error

    return run


@attrs.frozen
class Row:
    parameter: str
    call: Call
    boundary: Any
    over: Any


def send(**fixed: Any) -> Call:
    return call("send_msg", **fixed)


def attach(**fixed: Any) -> Call:
    return call("send_attach_msg", **fixed)


TEAM = {"team": True, "to": "team-1"}
MB15 = 15 * 1024 * 1024
ALL_OS = ["ios", "aos", "pc", "web", "mac"]

ROWS = [
    # msg/sendMsg
    Row("from", send(from_=VALUE), "a" * 32, "a" * 33),
    Row("from", send(from_=VALUE), "a", ""),
    Row("to", send(to=VALUE), "b" * 32, "b" * 33),
    Row("body", send(body=VALUE), nim.Text("m" * 4990), nim.Text("m" * 4991)),
    Row("body", send(body=VALUE), nim.Text("中" * 4990), nim.Text("中" * 4991)),
    Row("msgDesc", send(msg_desc=VALUE), "d" * 500, "d" * 501),
    Row("pushcontent", send(push=VALUE), nim.Push("p" * 500), nim.Push("p" * 501)),
    Row(
        "payload",
        send(push=VALUE),
        nim.Push(payload={"k": "v" * 2040}),
        nim.Push(payload={"k": "v" * 2041}),
    ),
    Row("ext", send(ext=VALUE), "e" * 1024, "e" * 1025),
    Row(
        "antispamCustom",
        send(antispam_custom=VALUE),
        {"type": 1, "data": "s" * 4980},
        {"type": 1, "data": "s" * 4981},
    ),
    Row(
        "antispamCustom",
        send(antispam_custom=VALUE),
        {"type": 2, "data": "u"},
        {"type": 3, "data": "u"},
    ),
    Row("yidunAntiCheating", send(yidun_anti_cheating=VALUE), {"k": "y" * 1016}, {"k": "y" * 1017}),
    Row("yidunAntiSpamExt", send(yidun_anti_spam_ext=VALUE), {"k": "y" * 1016}, {"k": "y" * 1017}),
    Row("subType", send(sub_type=VALUE), 1, 0),
    Row("env", send(env=VALUE), "v" * 32, "v" * 33),
    Row("forcepushlist", send(force_push_list=VALUE, **TEAM), ["c" * 32], ["c" * 33]),
    # msg/sendAttachMsg
    Row("from", attach(from_=VALUE), "a" * 32, "a" * 33),
    Row("to", attach(to=VALUE), "b" * 32, "b" * 33),
    Row("attach", attach(attach=VALUE), "x" * 4096, "x" * 4097),
    Row("attach", attach(attach=VALUE), "x", ""),
    Row("attach", attach(attach=VALUE), {"k": "好" * 4088}, {"k": "好" * 4089}),
    Row("pushcontent", attach(push=VALUE), nim.Push("p" * 500), nim.Push("p" * 501)),
    Row(
        "payload",
        attach(push=VALUE),
        nim.Push(payload={"k": "v" * 2040}),
        nim.Push(payload={"k": "v" * 2041}),
    ),
    Row("sound", attach(sound=VALUE), "s" * 30, "s" * 31),
    Row("forcePushContent", attach(force_push_content=VALUE), "f" * 500, "f" * 501),
    Row(
        "forcePushList",
        attach(force_push_list=VALUE, **TEAM),
        [f"u{i}" for i in range(100)],
        [f"u{i}" for i in range(101)],
    ),
    Row("env", attach(env=VALUE), "v" * 32, "v" * 33),
    # msg/sendBatchMsg
    Row("fromAccid", call("send_batch_msg", from_=VALUE), "a" * 32, "a" * 33),
    Row("toAccids", call("send_batch_msg", to=VALUE), ["b" * 32], ["b" * 33]),
    Row("body", call("send_batch_msg", body=VALUE), nim.Text("m" * 4990), nim.Text("m" * 4991)),
    Row("msgDesc", call("send_batch_msg", msg_desc=VALUE), "d" * 500, "d" * 501),
    Row(
        "pushcontent", call("send_batch_msg", push=VALUE), nim.Push("p" * 500), nim.Push("p" * 501)
    ),
    Row("ext", call("send_batch_msg", ext=VALUE), "e" * 1024, "e" * 1025),
    Row("env", call("send_batch_msg", env=VALUE), "v" * 32, "v" * 33),
    # msg/sendBatchAttachMsg
    Row("fromAccid", call("send_batch_attach_msg", from_=VALUE), "a" * 32, "a" * 33),
    Row("toAccids", call("send_batch_attach_msg", to=VALUE), ["b" * 32], ["b" * 33]),
    Row("attach", call("send_batch_attach_msg", attach=VALUE), "x" * 4096, "x" * 4097),
    Row("attach", call("send_batch_attach_msg", attach=VALUE), "x", ""),
    Row("sound", call("send_batch_attach_msg", sound=VALUE), "s" * 30, "s" * 31),
    Row(
        "forcePushContent",
        call("send_batch_attach_msg", force_push_content=VALUE),
        "f" * 500,
        "f" * 501,
    ),
    Row(
        "payload",
        call("send_batch_attach_msg", push=VALUE),
        nim.Push(payload={"k": "v" * 2040}),
        nim.Push(payload={"k": "v" * 2041}),
    ),
    Row("env", call("send_batch_attach_msg", env=VALUE), "v" * 32, "v" * 33),
    # msg/upload and msg/fileUpload
    Row("content", call("upload", content=VALUE), b"u" * MB15, b"u" * (MB15 + 1)),
    Row("content", call("upload", content=VALUE), b"u", b""),
    Row("expireSec", call("upload", expire_sec=VALUE), 86400, 86399),
    Row("tag", call("upload", tag=VALUE), "t" * 32, "t" * 33),
    # Java SDK UploadFileRequestV1: type "最多 128 字符".
    Row("type", call("upload", type=VALUE), "t" * 128, "t" * 129),
    Row("type", call("file_upload", type=VALUE), "t" * 128, "t" * 129),
    Row("content", call("file_upload", content=VALUE), b"u" * MB15, b"u" * (MB15 + 1)),
    Row("expireSec", call("file_upload", expire_sec=VALUE), 86400, 86399),
    Row("tag", call("file_upload", tag=VALUE), "t" * 32, "t" * 33),
    # job/nos/del: a span of 1 to 7 days, ending before today (China time)
    Row(
        "endTime",
        call("clean_nos_files", window=VALUE),
        (-1 - DAY, -1),
        (-DAY, -1),
    ),
    Row(
        "endTime",
        call("clean_nos_files", window=VALUE),
        (-1 - 7 * DAY, -1),
        (-2 - 7 * DAY, -1),
    ),
    Row(
        "endTime",
        call("clean_nos_files", window=VALUE),
        (-1 - 2 * DAY, -1),
        (-2 * DAY, 0),
    ),
    Row("tag", call("clean_nos_files", tag=VALUE), "t" * 32, "t" * 33),
    # msg/recall
    Row("from", call("recall", from_=VALUE), "a" * 32, "a" * 33),
    Row("to", call("recall", to=VALUE), "b" * 32, "b" * 33),
    # Java SDK RecallMessageRequestV1 and DeleteMessageOneWayRequestV1: 128.
    Row("msg", call("recall", msg=VALUE), "m" * 128, "m" * 129),
    Row("msg", call("delete_msg_one_way", msg=VALUE), "m" * 128, "m" * 129),
    Row("attach", call("recall", attach=VALUE), "x" * 5000, "x" * 5001),
    Row(
        "payload",
        call("recall", push=VALUE),
        nim.Push(payload={"k": "v" * 2040}),
        nim.Push(payload={"k": "v" * 2041}),
    ),
    Row("env", call("recall", env=VALUE), "v" * 32, "v" * 33),
    # msg/broadcastMsg
    Row("body", call("broadcast", body=VALUE), "b" * 4096, "b" * 4097),
    Row("body", call("broadcast", body=VALUE), "b", ""),
    Row("from", call("broadcast", from_=VALUE), "a" * 32, "a" * 33),
    Row("targetOs", call("broadcast", target_os=VALUE), ALL_OS, ["ios", "android"]),
    Row("ttl", call("broadcast", ttl_hours=VALUE), 1, 0),
    # msg/delMsgOneWay and msg/delRoamSession
    Row("from", call("delete_msg_one_way", from_=VALUE), "a" * 32, "a" * 33),
    Row("to", call("delete_msg_one_way", to=VALUE), "b" * 32, "b" * 33),
    Row("from", call("delete_roam_session", from_=VALUE), "a" * 32, "a" * 33),
    Row("to", call("delete_roam_session", to=VALUE), "b" * 32, "b" * 33),
    # history/querySessionMsg (Java SDK QuerySessionHistoryMessageRequestV1)
    Row("from", call("query_session_msg", from_=VALUE), "a" * 32, "a" * 33),
    Row("to", call("query_session_msg", to=VALUE), "b" * 32, "b" * 33),
    Row("limit", call("query_session_msg", limit=VALUE), 100, 101),
    Row("limit", call("query_session_msg", limit=VALUE), 1, 0),
    Row("endtime", call("query_session_msg", begin=VALUE, end=1000), 999, 1000),
    Row(
        "type",
        call("query_session_msg", types=VALUE),
        [0, 1, 2, 3, 4, 5, 6, 10, 11, 100],
        [0, 7],
    ),
]
IDS = [f"{i}-{row.parameter}" for i, row in enumerate(ROWS)]


@pytest.fixture
def raw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch every client-side check off, so that values go on the wire as given."""
    monkeypatch.setattr(_pipeline, "validate", lambda action, form, only=None: None)
    monkeypatch.setattr(_pipeline, "check_recipients", lambda recipients: None)
    monkeypatch.setattr(_bulk, "split_recipients", lambda chunk, start: (chunk, None))


@pytest.mark.parametrize("row", ROWS, ids=IDS)
async def test_the_boundary_value_is_accepted_by_client_and_server(
    row: Row, client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Exactly at the limit: sent, and the emulator answers 200."""
    await row.call(client, row.boundary)
    assert [call.code for call in emulator.calls] == [200]


@pytest.mark.parametrize("row", ROWS, ids=IDS)
async def test_one_past_the_limit_is_refused_before_anything_is_sent(
    row: Row, client: nim.NimClient, emulator: NimEmulator
) -> None:
    """InvalidRequest names the parameter and the limit; the emulator saw no call."""
    with pytest.raises(nim.InvalidRequest) as caught:
        await row.call(client, row.over)
    assert caught.value.parameter == row.parameter
    assert row.parameter in str(caught.value)
    assert "must be" in str(caught.value)
    assert emulator.calls == []


@pytest.mark.parametrize("row", ROWS, ids=IDS)
@pytest.mark.usefixtures("raw")
async def test_the_emulator_refuses_the_same_value_sent_raw_with_414(
    row: Row, client: nim.NimClient, emulator: NimEmulator
) -> None:
    """With the client's checks off, the server-side rule answers 414 naming the parameter."""
    with pytest.raises(nim.ParameterError) as caught:
        await row.call(client, row.over)
    assert row.parameter.lower() in caught.value.desc.lower()
    assert len(emulator.calls) == 1


async def test_a_non_body_object_is_refused(client: nim.NimClient) -> None:
    """body must be one of the body classes, not a bare dict."""
    with pytest.raises(nim.InvalidRequest, match="body"):
        await client.send_msg("alice", "bob", {"msg": "hi"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("keyword", "value", "parameter"),
    [
        ("force_push_content", "@all", "forcepushcontent"),
        ("force_push_all", True, "forcepushall"),
        ("mark_read", True, "markRead"),
        ("force_push_list", ["bob"], "forcepushlist"),
    ],
)
async def test_team_only_parameters_are_refused_for_one_to_one_messages(
    client: nim.NimClient, emulator: NimEmulator, keyword: str, value: Any, parameter: str
) -> None:
    """The seed defines these for team messages only; a one-to-one send is refused early."""
    with pytest.raises(nim.InvalidRequest) as caught:
        await client.send_msg("alice", "bob", nim.Text("hi"), **{keyword: value})
    assert caught.value.parameter == parameter
    assert emulator.calls == []


async def test_recall_pushcontent_past_500_is_sent_for_the_server_to_cut(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """seed, recall pushcontent: "超过500字符后,会对文本进行截断" — not an error."""
    await client.recall(1, 1, from_="alice", to="bob", push=nim.Push("p" * 600))
    assert [call.code for call in emulator.calls] == [200]


async def test_return_msgid_chunks_by_100(client: nim.NimClient, emulator: NimEmulator) -> None:
    """seed: with returnMsgid=true toAccids holds at most 100, so 101 go in two calls."""
    await client.send_batch_msg(
        "alice", [f"u{i}" for i in range(101)], nim.Text("hi"), return_msgid=True
    )
    assert [len(json.loads(call.form["toAccids"])) for call in emulator.calls] == [100, 1]


@pytest.mark.parametrize(("return_msgid", "limit"), [("true", 100), (None, 500)])
def test_the_recipient_rule_allows_100_with_return_msgid_and_500_without(
    return_msgid: str | None, limit: int
) -> None:
    """One past the limit is refused; the limit itself passes."""
    form = {"fromAccid": "a", "returnMsgid": return_msgid}
    fields = {k: v for k, v in form.items() if v is not None}
    validate("msg/sendBatchMsg", {**fields, "toAccids": json.dumps(["u"] * limit)})
    with pytest.raises(nim.InvalidRequest, match=f"{limit + 1} accids"):
        validate("msg/sendBatchMsg", {**fields, "toAccids": json.dumps(["u"] * (limit + 1))})
