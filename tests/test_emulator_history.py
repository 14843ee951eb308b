"""The four actions the seeds do not cover (Java SDK MessageV1UrlContext): read receipts,
delMsg and history/delBroadcastMsgById."""

from __future__ import annotations

import json
import time

import pytest

from nim_async.testing import NimEmulator

from . import _raw as raw
from ._raw import KEY, SECRET, call, data, form, send

pytestmark = pytest.mark.anyio


@pytest.fixture
def emu() -> NimEmulator:
    return NimEmulator(
        KEY, SECRET, accounts=["alice", "bob", "carol"], teams={"7": ["alice", "bob"]}
    )


async def team_message(emu: NimEmulator, tid: str = "7") -> int:
    """The msgid of a fresh text message from alice to team ``tid``."""
    msgid = data(await send(emu, to=tid, ope="1"))["msgid"]
    assert isinstance(msgid, int)
    return msgid


async def test_mark_read_msg_answers_a_timestamp_and_records_the_receipt(emu: NimEmulator) -> None:
    """markReadMsg answers data.timestamp (ms, the emulator's clock) and records who read what."""
    answer = await call(emu, "msg/markReadMsg", form(from_="bob", to="alice", msgidClient="c-1"))
    assert answer["code"] == 200
    stamp = data(answer)["timestamp"]
    assert isinstance(stamp, int)
    assert abs(stamp - time.time() * 1000) < 5_000
    (receipt,) = emu.read_receipts
    assert (receipt.action, receipt.reader, receipt.to, receipt.team) == (
        "msg/markReadMsg",
        "bob",
        "alice",
        False,
    )
    assert (receipt.msgid_client, receipt.timestamp) == ("c-1", stamp)


@pytest.mark.parametrize(
    ("reader", "sender", "named"), [("zed", "alice", "from"), ("bob", "zed", "to")]
)
async def test_mark_read_msg_needs_registered_accounts(
    emu: NimEmulator, reader: str, sender: str, named: str
) -> None:
    """An unknown reader or sender answers 404 naming the parameter, and nothing is recorded."""
    answer = await call(emu, "msg/markReadMsg", form(from_=reader, to=sender, msgidClient="c"))
    assert answer["code"] == 404
    assert named in str(answer["desc"])
    assert emu.read_receipts == []


async def test_mark_read_team_msg_marks_team_messages_and_lists_the_rest(emu: NimEmulator) -> None:
    """errMsgIds lists unknown ids and messages outside the team; the others are read by accid."""
    first, second = await team_message(emu), await team_message(emu)
    p2p = data(await send(emu))["msgid"]
    asked = [first, 424242, second, p2p]
    answer = await call(
        emu, "msg/markReadTeamMsg", form(accid="bob", tid="7", msgids=json.dumps(asked))
    )
    assert answer == {"code": 200, "data": {"errMsgIds": [424242, p2p]}}
    assert [m.read_by for m in emu.messages] == [{"bob"}, {"bob"}, set()]
    (receipt,) = emu.read_receipts
    assert (receipt.reader, receipt.to, receipt.team) == ("bob", "7", True)
    assert (receipt.msgids, receipt.failed) == ((first, second), (424242, p2p))


async def test_mark_read_team_msg_fails_messages_of_another_team(emu: NimEmulator) -> None:
    """A message of team 8 is not in team 7: its id comes back in errMsgIds."""
    emu.add_team("8", ["alice", "bob"])
    other = await team_message(emu, "8")
    answer = await call(emu, "msg/markReadTeamMsg", form(accid="bob", tid="7", msgids=f"[{other}]"))
    assert data(answer)["errMsgIds"] == [other]
    assert emu.messages[0].read_by == set()


async def test_mark_read_team_msg_fails_deleted_messages(emu: NimEmulator) -> None:
    """A message deleted by delMsg can no longer be marked read."""
    msgid = await team_message(emu)
    target = form(deleteMsgid=str(msgid), timetag="1", type="8", from_="alice", to="7")
    assert (await call(emu, "msg/delMsg", target)) == {"code": 200}
    answer = await call(emu, "msg/markReadTeamMsg", form(accid="bob", tid="7", msgids=f"[{msgid}]"))
    assert data(answer)["errMsgIds"] == [msgid]


@pytest.mark.parametrize(
    ("accid", "tid", "code", "named"),
    [("zed", "7", 404, "accid"), ("carol", "7", 804, "accid"), ("bob", "99", 404, "tid")],
)
async def test_mark_read_team_msg_checks_the_reader_and_the_team(
    emu: NimEmulator, accid: str, tid: str, code: int, named: str
) -> None:
    """The reader must be registered (404) and a member (804) of a known team (404)."""
    msgid = await team_message(emu)
    answer = await call(emu, "msg/markReadTeamMsg", form(accid=accid, tid=tid, msgids=f"[{msgid}]"))
    assert answer["code"] == code
    assert named in str(answer["desc"])
    assert emu.messages[0].read_by == set()


async def test_del_msg_marks_the_message_deleted(emu: NimEmulator) -> None:
    """delMsg (type 7 p2p) answers {"code": 200} and sets deleted, nothing else."""
    sent = data(await send(emu))
    target = form(
        deleteMsgid=str(sent["msgid"]),
        timetag=str(sent["timetag"]),
        type="7",
        from_="alice",
        to="bob",
    )
    assert (await call(emu, "msg/delMsg", target)) == {"code": 200}
    (message,) = emu.messages
    assert (message.deleted, message.recalled, message.deleted_one_way) == (True, False, False)


async def test_del_msg_of_an_unknown_message_answers_200(emu: NimEmulator) -> None:
    """Nothing to delete is not an error, as recall of an unknown message is not."""
    target = form(deleteMsgid="42", timetag="1", type="7", from_="alice", to="bob")
    assert (await call(emu, "msg/delMsg", target)) == {"code": 200}


async def test_del_msg_with_the_wrong_type_is_403(emu: NimEmulator) -> None:
    """A p2p message named as a team message (type 8) is refused, as by delMsgOneWay."""
    sent = data(await send(emu))
    target = form(deleteMsgid=str(sent["msgid"]), timetag="1", type="8", from_="alice", to="bob")
    assert (await call(emu, "msg/delMsg", target))["code"] == 403
    assert not emu.messages[0].deleted


async def test_del_broadcast_marks_the_broadcast_deleted(emu: NimEmulator) -> None:
    """history/delBroadcastMsgById is routed, answers {"code": 200} and marks that broadcast."""
    kept = (await call(emu, "msg/broadcastMsg", form(body="a")))["msg"]
    gone = (await call(emu, "msg/broadcastMsg", form(body="b")))["msg"]
    assert isinstance(kept, dict)
    assert isinstance(gone, dict)
    answer = await call(
        emu, "history/delBroadcastMsgById", form(broadcastId=str(gone["broadcastId"]))
    )
    assert answer == {"code": 200}
    assert [(b.body, b.deleted) for b in emu.broadcasts] == [("a", False), ("b", True)]
    assert emu.calls[-1].action == "history/delBroadcastMsgById"


async def test_del_broadcast_of_an_unknown_id_answers_200(emu: NimEmulator) -> None:
    """An unknown broadcastId answers 200 and changes nothing."""
    await call(emu, "msg/broadcastMsg", form(body="a"))
    assert (await call(emu, "history/delBroadcastMsgById", form(broadcastId="1"))) == {"code": 200}
    assert not emu.broadcasts[0].deleted


async def test_only_the_history_action_is_routed_under_history(emu: NimEmulator) -> None:
    """history/ is not a wildcard: another action under it is HTTP 404."""
    response = await raw.post(emu, "history/queryBroadcastMsg", {"broadcastId": "1"})
    assert response.status_code == 404


async def test_new_actions_take_injected_faults(emu: NimEmulator) -> None:
    """fail_next knows the new actions by name."""
    emu.fail_next("history/delBroadcastMsgById", 500)
    answer = await call(emu, "history/delBroadcastMsgById", form(broadcastId="1"))
    assert answer["code"] == 500
