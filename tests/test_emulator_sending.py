"""Sending: sendMsg, the batch sends and custom notifications, with accounts and teams."""

from __future__ import annotations

import json

import pytest

from nim_async.testing import NimEmulator

from ._raw import KEY, SECRET, TEXT_BODY, call, data, form, send

pytestmark = pytest.mark.anyio


@pytest.fixture
def emu() -> NimEmulator:
    return NimEmulator(KEY, SECRET, accounts=["alice", "bob", "carol"])


async def test_send_msg_stores_the_message_with_increasing_ids(emu: NimEmulator) -> None:
    """sendMsg answers msgid and timetag (ms) and stores what it sent."""
    first, second = data(await send(emu)), data(await send(emu, to="carol"))
    assert isinstance(first["msgid"], int)
    assert isinstance(second["msgid"], int)
    assert second["msgid"] > first["msgid"]
    assert abs(int(str(first["timetag"])) - emu.now() * 1000) < 5_000
    stored = emu.messages[0]
    assert (stored.msgid, stored.timetag) == (first["msgid"], first["timetag"])
    assert (stored.from_, stored.to, stored.team, stored.type) == ("alice", "bob", False, 0)
    assert (stored.body, stored.attach, stored.recalled) == (TEXT_BODY, None, False)
    assert stored.form["ope"] == "0"


@pytest.mark.parametrize(
    ("sender", "to", "named"), [("mallory", "bob", "from"), ("alice", "zed", "to")]
)
async def test_send_msg_to_or_from_an_unknown_account_is_404(
    emu: NimEmulator, sender: str, to: str, named: str
) -> None:
    """An accid that is not registered answers 404 naming the parameter."""
    answer = await send(emu, to=to, from_=sender)
    assert answer["code"] == 404
    assert named in str(answer["desc"])
    assert emu.messages == []


async def test_register_adds_accounts(emu: NimEmulator) -> None:
    """register() makes an accid known."""
    emu.register("zed")
    assert (await send(emu, to="zed"))["code"] == 200


async def test_without_accounts_every_accid_exists() -> None:
    """accounts=None: any accid is registered, and no batch has unregistered recipients."""
    emu = NimEmulator(KEY, SECRET)
    assert (await send(emu, to="anyone"))["code"] == 200
    answer = await call(
        emu, "msg/sendBatchMsg", form(fromAccid="x", toAccids='["y","z"]', type="0", body=TEXT_BODY)
    )
    assert "unregister" not in answer


async def test_team_messages_check_the_team_and_its_members() -> None:
    """ope=1 needs a known tid (404) whose members include the sender (804)."""
    emu = NimEmulator(KEY, SECRET, teams={"t1": ["alice"]})
    assert (await send(emu, to="t1", ope="1"))["code"] == 200
    assert emu.messages[0].team
    assert (await send(emu, to="t2", ope="1"))["code"] == 404
    assert (await send(emu, to="t1", ope="1", from_="bob"))["code"] == 804
    emu.add_team("t2", ["bob"])
    assert (await send(emu, to="t2", ope="1", from_="bob"))["code"] == 200


async def test_without_teams_every_tid_exists(emu: NimEmulator) -> None:
    """teams=None: any tid is a team the sender may write to."""
    assert (await send(emu, to="12345", ope="1"))["code"] == 200


async def test_send_batch_msg_delivers_to_registered_accounts_only(emu: NimEmulator) -> None:
    """Unregistered recipients come back in "unregister" in input order; the rest get one copy."""
    answer = await call(
        emu,
        "msg/sendBatchMsg",
        form(
            fromAccid="alice",
            toAccids='["zed","bob","yan","carol","bob"]',
            type="0",
            body=TEXT_BODY,
        ),
    )
    assert answer["code"] == 200
    assert answer["unregister"] == ["zed", "yan"]
    assert "msgids" not in answer
    assert [m.to for m in emu.messages] == ["bob", "carol"]
    assert {m.timetag for m in emu.messages} == {answer["timetag"]}
    assert all(m.action == "msg/sendBatchMsg" and m.msgid for m in emu.messages)


async def test_send_batch_msg_answers_msgids_when_asked(emu: NimEmulator) -> None:
    """returnMsgid=true answers {accid: msgid} for the delivered recipients."""
    answer = await call(
        emu,
        "msg/sendBatchMsg",
        form(
            fromAccid="alice",
            toAccids='["bob","carol","zed"]',
            type="0",
            body=TEXT_BODY,
            returnMsgid="true",
        ),
    )
    assert answer["msgids"] == {m.to: m.msgid for m in emu.messages}
    assert isinstance(answer["msgids"], dict)
    assert set(answer["msgids"]) == {"bob", "carol"}


async def test_without_unregistered_recipients_there_is_no_unregister(emu: NimEmulator) -> None:
    """seeds/000: "If no unregistered users are included, no data for this parameter"."""
    answer = await call(
        emu, "msg/sendBatchAttachMsg", form(fromAccid="alice", toAccids='["bob"]', attach="{}")
    )
    assert answer == {"code": 200}


async def test_unregister_can_be_a_json_encoded_string() -> None:
    """unregister_as_string=True gives the other documented shape: a string holding the array."""
    emu = NimEmulator(KEY, SECRET, accounts=["alice"], unregister_as_string=True)
    answer = await call(
        emu, "msg/sendBatchAttachMsg", form(fromAccid="alice", toAccids='["a","b"]', attach="{}")
    )
    assert answer["unregister"] == '["a", "b"]'
    assert json.loads(str(answer["unregister"])) == ["a", "b"]


async def test_a_batch_from_an_unknown_sender_is_404(emu: NimEmulator) -> None:
    """fromAccid must be registered."""
    answer = await call(
        emu, "msg/sendBatchAttachMsg", form(fromAccid="x", toAccids='["bob"]', attach="{}")
    )
    assert answer["code"] == 404
    assert "fromAccid" in str(answer["desc"])


async def test_attach_notifications_are_stored_without_msgid(emu: NimEmulator) -> None:
    """sendAttachMsg answers {"code": 200} and stores a notification: attach, no msgid."""
    answer = await call(
        emu, "msg/sendAttachMsg", form(from_="alice", msgtype="0", to="bob", attach='{"a":1}')
    )
    assert answer == {"code": 200}
    note = emu.messages[0]
    assert (note.msgid, note.type, note.body, note.attach) == (None, None, None, '{"a":1}')
    unknown = await call(
        emu, "msg/sendAttachMsg", form(from_="alice", msgtype="0", to="zed", attach="{}")
    )
    assert unknown["code"] == 404


async def test_batch_attach_stores_one_notification_per_recipient(emu: NimEmulator) -> None:
    """sendBatchAttachMsg delivers to each registered recipient."""
    answer = await call(
        emu,
        "msg/sendBatchAttachMsg",
        form(fromAccid="alice", toAccids='["bob","carol","x"]', attach="{}"),
    )
    assert answer == {"code": 200, "unregister": ["x"]}
    assert [(m.to, m.msgid) for m in emu.messages] == [("bob", None), ("carol", None)]


async def test_check_accid_async_enable_leaves_unregister_out(emu: NimEmulator) -> None:
    """Java SDK SendBatchAttachMsgResponseV1: with checkAccidAsyncEnable=true, no unregister."""
    answer = await call(
        emu,
        "msg/sendBatchAttachMsg",
        form(fromAccid="alice", toAccids='["bob","x"]', attach="{}", checkAccidAsyncEnable="true"),
    )
    assert answer == {"code": 200}
    assert [m.to for m in emu.messages] == ["bob"]
    assert emu.messages[0].form["checkAccidAsyncEnable"] == "true"


async def test_check_accid_async_disabled_keeps_unregister(emu: NimEmulator) -> None:
    """checkAccidAsyncEnable=false answers unregister as without it."""
    answer = await call(
        emu,
        "msg/sendBatchAttachMsg",
        form(fromAccid="alice", toAccids='["bob","x"]', attach="{}", checkAccidAsyncEnable="false"),
    )
    assert answer == {"code": 200, "unregister": ["x"]}


async def test_new_send_msg_fields_are_kept_in_the_form(emu: NimEmulator) -> None:
    """sendMsg's SDK-only fields (yidunAntiSpamExt, async, robot*) are stored as sent."""
    extra = {
        "yidunAntiSpamExt": '{"k":"v"}',
        "async": "true",
        "robotAccount": "bot",
        "robotTopic": "t",
        "robotFunction": "f",
        "robotCustomContent": "c" * 5000,
    }
    assert (await send(emu, **extra))["code"] == 200
    assert {k: emu.messages[0].form[k] for k in extra} == extra


async def test_send_batch_msg_keeps_msg_sender_no_sense(emu: NimEmulator) -> None:
    """sendBatchMsg takes msgSenderNoSense and yidunAntiSpamExt and stores them."""
    answer = await call(
        emu,
        "msg/sendBatchMsg",
        form(
            fromAccid="alice",
            toAccids='["bob"]',
            type="0",
            body=TEXT_BODY,
            msgSenderNoSense="1",
            yidunAntiSpamExt="{}",
        ),
    )
    assert answer["code"] == 200
    stored = emu.messages[0].form
    assert (stored["msgSenderNoSense"], stored["yidunAntiSpamExt"]) == ("1", "{}")
