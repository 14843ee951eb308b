"""The actions the seeds do not cover (Java SDK MessageV1UrlContext and HistoryV1UrlContext):
read receipts, delMsg, history/delBroadcastMsgById and history/querySessionMsg."""

from __future__ import annotations

import json
import time

import pytest

from nim_async.testing import NimEmulator

from . import _raw as raw
from ._raw import KEY, SECRET, TEXT_BODY, call, data, form, send

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


def history_query(**fields: str) -> dict[str, str]:
    """A querySessionMsg form over all time for alice and bob; ``fields`` add or replace."""
    return {
        "from": "alice",
        "to": "bob",
        "begintime": "0",
        "endtime": str(2**62),
        "limit": "100",
    } | form(**fields)


async def history(emu: NimEmulator, **fields: str) -> list[dict[str, object]]:
    """The msgs of a querySessionMsg answer, decoded when they came as a string."""
    answer = await call(emu, "history/querySessionMsg", history_query(**fields))
    assert answer["code"] == 200
    msgs = answer["msgs"]
    decoded = json.loads(msgs) if isinstance(msgs, str) else msgs
    assert isinstance(decoded, list)
    assert answer["size"] == len(decoded)
    return decoded


async def test_history_holds_each_delivery_of_a_batch_message(emu: NimEmulator) -> None:
    """sendBatchMsg: one message per registered recipient, each in its own session, with the
    msgid the answer gave; an unregistered recipient has none."""
    fields = {"fromAccid": "alice", "toAccids": '["bob","carol","zed"]', "type": "0"}
    answer = await call(
        emu, "msg/sendBatchMsg", {**fields, "body": '{"msg":"all"}', "returnMsgid": "true"}
    )
    msgids = answer["msgids"]
    assert isinstance(msgids, dict)
    for accid in ("bob", "carol"):
        (entry,) = await history(emu, to=accid)
        assert (entry["from"], entry["msgid"], entry["sendtime"]) == (
            "alice",
            msgids[accid],
            answer["timetag"],
        )
        assert (entry["type"], entry["body"], entry["fromclienttype"]) == (0, '{"msg":"all"}', 32)
    assert await history(emu, to="zed") == []


async def test_history_never_holds_notifications(emu: NimEmulator) -> None:
    """sendAttachMsg and sendBatchAttachMsg are stored as deliveries, never as history."""
    await call(emu, "msg/sendAttachMsg", form(from_="alice", msgtype="0", to="bob", attach="{}"))
    await call(
        emu, "msg/sendBatchAttachMsg", form(fromAccid="bob", toAccids='["alice"]', attach="{}")
    )
    assert len(emu.messages) == 2
    assert await history(emu) == []


async def test_history_leaves_out_messages_sent_with_history_false(emu: NimEmulator) -> None:
    """option {"history": false} on sendMsg and sendBatchMsg: accepted, but not kept."""
    await send(emu, option='{"history":false}')
    batch = {"fromAccid": "alice", "toAccids": '["bob"]', "type": "0", "body": TEXT_BODY}
    await call(emu, "msg/sendBatchMsg", {**batch, "option": '{"history":false,"roam":true}'})
    kept = data(await send(emu, option='{"history":true}'))["msgid"]
    assert [entry["msgid"] for entry in await history(emu)] == [kept]


@pytest.mark.parametrize("as_string", [False, True])
async def test_msgs_come_as_an_array_or_as_a_string(as_string: bool) -> None:
    """msgs_as_string=True gives the array as a JSON-encoded string (both SDKs read it)."""
    emu = NimEmulator(KEY, SECRET, msgs_as_string=as_string)
    await send(emu)
    answer = await call(emu, "history/querySessionMsg", history_query())
    assert isinstance(answer["msgs"], str) is as_string
    assert len(await history(emu)) == 1


async def test_history_orders_by_time_then_msgid_both_directions(emu: NimEmulator) -> None:
    """Newest first by default (reverse=2), oldest first with reverse=1; to→from included."""
    first = data(await send(emu))["msgid"]
    emu.advance(1)
    second = data(
        await call(
            emu, "msg/sendMsg", form(from_="bob", ope="0", to="alice", type="0", body=TEXT_BODY)
        )
    )["msgid"]
    assert [e["msgid"] for e in await history(emu)] == [second, first]
    assert [e["msgid"] for e in await history(emu, reverse="2")] == [second, first]
    assert [e["msgid"] for e in await history(emu, reverse="1")] == [first, second]
    assert [e["from"] for e in await history(emu, reverse="1", limit="1")] == ["alice"]


async def test_exclude_msgid_is_an_anchor(emu: NimEmulator) -> None:
    """The page starts after the excluded message; an id not in the range excludes nothing."""
    ids = [data(await send(emu))["msgid"] for _ in range(3)]
    for message in emu.messages:
        message.timetag = emu.messages[0].timetag
    after = await history(emu, reverse="1", excludeMsgid=str(ids[0]))
    assert [e["msgid"] for e in after] == ids[1:]
    assert [e["msgid"] for e in await history(emu, excludeMsgid="42")] == ids[::-1]


async def test_history_query_takes_injected_faults_and_is_routed(emu: NimEmulator) -> None:
    """history/querySessionMsg is a known action: fail_next names it, and the call is recorded."""
    emu.fail_next("history/querySessionMsg", 503)
    answer = await call(emu, "history/querySessionMsg", history_query())
    assert answer["code"] == 503
    assert emu.calls[-1].action == "history/querySessionMsg"
