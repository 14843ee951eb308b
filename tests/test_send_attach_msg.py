"""send_attach_msg: custom system notifications, every parameter, as the server receives them."""

from __future__ import annotations

import json

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

pytestmark = pytest.mark.anyio


async def test_a_mapping_attach_goes_out_as_compact_json(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """attach may be a mapping; it is sent as JSON text, non-ASCII kept as characters."""
    result = await client.send_attach_msg("alice", "bob", {"myattach": "好友请求"})
    assert result is None
    (call,) = emulator.calls
    assert call.form == {
        "from": "alice",
        "msgtype": "0",
        "to": "bob",
        "attach": '{"myattach":"好友请求"}',
    }
    (stored,) = emulator.messages
    assert stored.attach == '{"myattach":"好友请求"}'
    assert stored.msgid is None


async def test_a_string_attach_is_sent_as_it_is(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A string attach is not JSON-encoded a second time."""
    await client.send_attach_msg("alice", "bob", "plain text")
    assert emulator.calls[0].form["attach"] == "plain text"


@pytest.mark.parametrize(("offline", "save"), [(True, "2"), (False, "1")])
async def test_offline_is_nims_save_2_or_1(
    client: nim.NimClient, emulator: NimEmulator, offline: bool, save: str
) -> None:
    """offline=True keeps it for offline users (save=2), False sends it online only (save=1)."""
    await client.send_attach_msg("alice", "bob", "x", offline=offline)
    assert emulator.calls[0].form["save"] == save


async def test_every_keyword_reaches_the_server_under_its_nim_name(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Each sendAttachMsg parameter of the seed has a keyword, team variant included."""
    await client.send_attach_msg(
        "alice",
        "team-9",
        {"k": "v"},
        team=True,
        offline=False,
        push=nim.Push("ping", {"p": 1}),
        sound="ding.aac",
        option=nim.MessageOption(badge=False, need_push_nick=True, route=False),
        force_push=True,
        force_push_content="forced",
        force_push_all=False,
        force_push_list=["bob"],
        env="staging",
    )
    (call,) = emulator.calls
    assert call.code == 200
    assert json.loads(call.form.pop("option")) == {
        "badge": False,
        "needPushNick": True,
        "route": False,
    }
    assert call.form == {
        "from": "alice",
        "msgtype": "1",
        "to": "team-9",
        "attach": '{"k":"v"}',
        "pushcontent": "ping",
        "payload": '{"p":1}',
        "sound": "ding.aac",
        "save": "1",
        "isForcePush": "true",
        "forcePushContent": "forced",
        "forcePushAll": "false",
        "forcePushList": '["bob"]',
        "env": "staging",
    }
    assert emulator.messages[0].team is True


async def test_message_only_options_are_refused_for_notifications(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Notifications read only badge, needPushNick and route: other options fail before sending."""
    with pytest.raises(nim.InvalidRequest, match="option") as caught:
        await client.send_attach_msg("alice", "bob", "x", option=nim.MessageOption(roam=False))
    assert caught.value.parameter == "option"
    assert emulator.calls == []


async def test_team_only_parameters_are_refused_for_one_to_one_notifications(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """forcePushList applies to team notifications only (seed: 发群自定义通知时)."""
    with pytest.raises(nim.InvalidRequest, match="forcePushList"):
        await client.send_attach_msg("alice", "bob", "x", force_push_list=["carol"])
    assert emulator.calls == []
