"""The validation table, walked rule by rule at its boundary.

For every rule: the boundary value is accepted by the client and the emulator;
one past it is refused by the client with nothing sent, and refused by the
emulator with 414 when the client's check is switched off ("sent raw").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

import nim_async as nim
from nim_async import _pipeline
from nim_async.testing import NimEmulator

pytestmark = pytest.mark.anyio

Call = Callable[[nim.NimClient, Any], Awaitable[object]]


@attrs.frozen
class Row:
    parameter: str
    call: Call
    boundary: Any
    over: Any


def send(**fixed: Any) -> Call:
    """send_msg with one keyword (or argument) taking the tested value."""

    def call(client: nim.NimClient, value: Any) -> Awaitable[object]:
        args = {"from_": "alice", "to": "bob", "body": nim.Text("hi"), **fixed}
        key = next(k for k, v in args.items() if v is VALUE)
        args[key] = value
        return client.send_msg(**args)

    return call


def attach(**fixed: Any) -> Call:
    """send_attach_msg with one keyword (or argument) taking the tested value."""

    def call(client: nim.NimClient, value: Any) -> Awaitable[object]:
        args = {"from_": "alice", "to": "bob", "attach": "x", **fixed}
        key = next(k for k, v in args.items() if v is VALUE)
        args[key] = value
        return client.send_attach_msg(**args)

    return call


VALUE = object()  # marks the argument a row varies
TEAM = {"team": True, "to": "team-1"}

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
        nim.Push(payload={"k": "v" * 1992}),
        nim.Push(payload={"k": "v" * 1993}),
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
    Row("subType", send(sub_type=VALUE), 1, 0),
    Row("useYidun", send(use_yidun=VALUE), False, True),
    Row("env", send(env=VALUE), "v" * 32, "v" * 33),
    Row("forcepushlist", send(force_push_list=VALUE, **TEAM), ["c" * 32], ["c" * 33]),
    # msg/sendAttachMsg
    Row("from", attach(from_=VALUE), "a" * 32, "a" * 33),
    Row("to", attach(to=VALUE), "b" * 32, "b" * 33),
    Row("attach", attach(attach=VALUE), "x" * 4096, "x" * 4097),
    Row("attach", attach(attach=VALUE), {"k": "好" * 4088}, {"k": "好" * 4089}),
    Row("pushcontent", attach(push=VALUE), nim.Push("p" * 500), nim.Push("p" * 501)),
    Row(
        "payload",
        attach(push=VALUE),
        nim.Push(payload={"k": "v" * 1992}),
        nim.Push(payload={"k": "v" * 1993}),
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
]
IDS = [f"{i}-{row.parameter}" for i, row in enumerate(ROWS)]


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
async def test_the_emulator_refuses_the_same_value_sent_raw_with_414(
    row: Row, client: nim.NimClient, emulator: NimEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the client's check off, the server-side rule answers 414 naming the parameter."""
    monkeypatch.setattr(_pipeline, "validate", lambda action, form: None)
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
