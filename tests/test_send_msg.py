"""send_msg: every body type and every sendMsg parameter, as the server receives them."""

from __future__ import annotations

import json
from typing import Any

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import make_client

pytestmark = pytest.mark.anyio

BODIES = [
    (nim.Text("哈哈哈"), 0, {"msg": "哈哈哈"}),
    (
        nim.Image("http://n/i", "9894", "jpg", 6814, 2332, 388245, name="图片"),
        1,
        {
            "url": "http://n/i",
            "md5": "9894",
            "ext": "jpg",
            "w": 6814,
            "h": 2332,
            "size": 388245,
            "name": "图片",
        },
    ),
    (
        nim.Voice("http://n/v", "87b9", 4551, 16420),
        2,
        {"url": "http://n/v", "md5": "87b9", "dur": 4551, "size": 16420, "ext": "aac"},
    ),
    (
        nim.Video("http://n/m", "da2c", 8003, 360, 480, 16420, "mp4"),
        3,
        {
            "url": "http://n/m",
            "md5": "da2c",
            "dur": 8003,
            "w": 360,
            "h": 480,
            "size": 16420,
            "ext": "mp4",
        },
    ),
    (
        nim.Location("中国 浙江省 杭州市", 120.19, 30.18),
        4,
        {"title": "中国 浙江省 杭州市", "lng": 120.19, "lat": 30.18},
    ),
    (
        nim.File("http://n/f", "79d6", "BlizzardReg.ttf", "ttf", 91680),
        6,
        {
            "url": "http://n/f",
            "md5": "79d6",
            "name": "BlizzardReg.ttf",
            "ext": "ttf",
            "size": 91680,
        },
    ),
    (nim.Tip("您收到一份礼物"), 10, {"msg": "您收到一份礼物"}),
    (nim.Custom({"myKey": [1, 2]}), 100, {"myKey": [1, 2]}),
]


@pytest.mark.parametrize(("body", "code", "expected"), BODIES, ids=lambda v: type(v).__name__)
async def test_each_body_type_goes_out_with_its_type_code_and_json(
    client: nim.NimClient, emulator: NimEmulator, body: nim.Body, code: int, expected: Any
) -> None:
    """The body class picks NIM's type; the body field is its JSON, characters unescaped."""
    result = await client.send_msg("alice", "bob", body)

    (call,) = emulator.calls
    assert call.form["type"] == str(code)
    assert json.loads(call.form["body"]) == expected
    assert "\\u" not in call.form["body"]
    (stored,) = emulator.messages
    assert result == nim.SendResult(stored.msgid, stored.timetag, False)


async def test_a_one_to_one_send_uses_ope_0_and_a_team_send_ope_1(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """team=True is the only way to say ope=1; users never type the number."""
    await client.send_msg("alice", "bob", nim.Text("a"))
    await client.send_msg("alice", "team-1", nim.Text("b"), team=True)
    assert [call.form["ope"] for call in emulator.calls] == ["0", "1"]
    assert [message.team for message in emulator.messages] == [False, True]


async def test_every_keyword_reaches_the_server_under_its_nim_name(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Each sendMsg parameter of the seed has a keyword, encoded as the seed says."""
    await client.send_msg(
        "alice",
        "team-1",
        nim.Custom({"k": 1}),
        team=True,
        option=nim.MessageOption(
            roam=False,
            history=True,
            sendersync=False,
            push=True,
            route=False,
            badge=True,
            need_push_nick=False,
            persistent=True,
            session_update=False,
        ),
        push=nim.Push("you have mail", {"deep": "link"}),
        msg_desc="a custom message",
        antispam=True,
        antispam_custom={"type": 1, "data": "check this"},
        ext="ext-data",
        force_push_list=["bob", "carol"],
        force_push_content="@you",
        force_push_all=False,
        bid="business-1",
        use_yidun=False,
        yidun_anti_cheating={"hash": "x"},
        mark_read=True,
        check_friend=False,
        sub_type=7,
        sender_no_sense=True,
        receiver_no_sense=False,
        env="prod",
    )
    (call,) = emulator.calls
    assert call.code == 200
    form = call.form
    assert json.loads(form["option"]) == {
        "roam": False,
        "history": True,
        "sendersync": False,
        "push": True,
        "route": False,
        "badge": True,
        "needPushNick": False,
        "persistent": True,
        "sessionUpdate": False,
    }
    assert {name: form[name] for name in form if name not in {"option", "body"}} == {
        "from": "alice",
        "ope": "1",
        "to": "team-1",
        "type": "100",
        "pushcontent": "you have mail",
        "payload": '{"deep":"link"}',
        "msgDesc": "a custom message",
        "antispam": "true",
        "antispamCustom": '{"type":1,"data":"check this"}',
        "ext": "ext-data",
        "forcepushlist": '["bob","carol"]',
        "forcepushcontent": "@you",
        "forcepushall": "false",
        "bid": "business-1",
        "useYidun": "0",
        "yidunAntiCheating": '{"hash":"x"}',
        "markRead": "1",
        "checkFriend": "false",
        "subType": "7",
        "msgSenderNoSense": "1",
        "msgReceiverNoSense": "0",
        "env": "prod",
    }


async def test_unset_keywords_are_not_sent_at_all(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """None means "server default": the parameter is left out, not sent empty."""
    await client.send_msg("alice", "bob", nim.Text("hi"), option=nim.MessageOption())
    (call,) = emulator.calls
    assert set(call.form) == {"from", "ope", "to", "type", "body"}


async def test_an_unknown_receiver_is_not_found() -> None:
    """The server answers 404 for an account that does not exist."""
    emulator = NimEmulator("k", "s", accounts=["alice"])
    async with make_client(
        emulator, app_key="k", app_secret="s", retry=nim.RetryPolicy()
    ) as strict:
        with pytest.raises(nim.NotFound) as caught:
            await strict.send_msg("alice", "nobody", nim.Text("hi"))
    assert caught.value.code == 404
    assert caught.value.action == "msg/sendMsg"
    assert emulator.messages == []


async def test_msgids_increase_and_timetags_are_milliseconds(client: nim.NimClient) -> None:
    """Results carry the server's id and timetag, typed."""
    first = await client.send_msg("alice", "bob", nim.Text("1"))
    second = await client.send_msg("alice", "bob", nim.Text("2"))
    assert isinstance(first.msgid, int)
    assert second.msgid > first.msgid
    assert first.timetag > 1_600_000_000_000
