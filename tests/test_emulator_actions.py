"""The other actions: uploads, NOS clean-up, recall, one-way deletion, broadcast, roaming."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from nim_async.testing import NimEmulator

from ._raw import KEY, SECRET, TEXT_BODY, call, data, form, send

pytestmark = pytest.mark.anyio

DAY = 86_400


def about(msgid: object, timetag: object, **fields: str) -> dict[str, str]:
    """The form naming one stored message (deleteMsgid, timetag), then ``form(**fields)``."""
    return {"deleteMsgid": str(msgid), "timetag": str(timetag)} | form(**fields)


@pytest.fixture
def emu() -> NimEmulator:
    return NimEmulator(KEY, SECRET, accounts=["alice", "bob", "carol"])


async def test_an_upload_is_served_at_its_url(emu: NimEmulator) -> None:
    """msg/upload stores the decoded bytes; the URL serves them with the upload's type."""
    content = b"\x89PNG\r\n"
    answer = await call(
        emu,
        "msg/upload",
        form(content=base64.b64encode(content).decode(), type="image/png", tag="icon"),
    )
    url = str(answer["url"])
    assert url.startswith("http://api.netease.im/nos/")
    (upload,) = emu.uploads.values()
    assert (upload.content, upload.type, upload.tag, upload.url) == (
        content,
        "image/png",
        "icon",
        url,
    )
    async with httpx.AsyncClient(transport=emu.transport()) as client:
        response = await client.get(url)
    assert response.content == content
    assert response.headers["content-type"] == "image/png"


async def test_ishttps_asks_for_an_https_url(emu: NimEmulator) -> None:
    """ishttps=true: the URL's scheme is https."""
    answer = await call(emu, "msg/fileUpload", form(ishttps="true"), files={"content": b"x"})
    assert str(answer["url"]).startswith("https://")
    assert next(iter(emu.uploads.values())).https


async def test_a_file_upload_keeps_the_bytes_and_fields(emu: NimEmulator) -> None:
    """msg/fileUpload records the file part and the text fields apart."""
    answer = await call(
        emu,
        "msg/fileUpload",
        form(type="bin", expireSec="86400"),
        files={"content": bytes(range(256))},
    )
    assert answer["code"] == 200
    (upload,) = emu.uploads.values()
    assert upload.content == bytes(range(256))
    assert upload.expire_sec == 86_400
    assert emu.calls[-1].files == {"content": bytes(range(256))}
    assert emu.calls[-1].form == {"type": "bin", "expireSec": "86400"}


async def test_an_upload_expires(emu: NimEmulator) -> None:
    """After expireSec of emulator time, the URL answers 404."""
    answer = await call(emu, "msg/fileUpload", form(expireSec=str(DAY)), files={"content": b"x"})
    async with httpx.AsyncClient(transport=emu.transport()) as client:
        assert (await client.get(str(answer["url"]))).status_code == 200
        emu.advance(DAY + 1)
        assert (await client.get(str(answer["url"]))).status_code == 404


async def test_nos_del_answers_a_task_and_removes_matching_uploads(emu: NimEmulator) -> None:
    """job/nos/del answers a 32-hex task id and cleans the files of its range, type and tag."""
    image = await call(
        emu, "msg/fileUpload", form(type="image/png", tag="icon"), files={"content": b"i"}
    )
    await call(emu, "msg/fileUpload", form(type="video/mp4", tag="icon"), files={"content": b"v"})
    await call(emu, "msg/fileUpload", form(type="image/png", tag="other"), files={"content": b"o"})
    start = int(emu.now() * 1000) - 1000
    emu.advance(2 * DAY)
    answer = await call(
        emu,
        "job/nos/del",
        form(
            startTime=str(start), endTime=str(start + DAY * 1000), contentType="image", tag="icon"
        ),
    )
    taskid = str(data(answer)["taskid"])
    assert len(taskid) == 32
    int(taskid, 16)
    (task,) = emu.nos_tasks
    assert task.taskid == taskid
    assert [emu.uploads.get(i) for i in task.removed] == [None]
    assert str(image["url"]).endswith(task.removed[0])
    assert len(emu.uploads) == 2


async def test_recall_marks_the_message_recalled(emu: NimEmulator) -> None:
    """A recall within the window answers 200 and sets recalled."""
    sent = data(await send(emu))
    answer = await call(
        emu, "msg/recall", about(sent["msgid"], sent["timetag"], type="7", from_="alice", to="bob")
    )
    assert answer == {"code": 200}
    assert emu.messages[0].recalled


async def test_recalling_an_unknown_message_answers_200(emu: NimEmulator) -> None:
    """facts: recalling a message that does not exist answers 200."""
    answer = await call(
        emu, "msg/recall", form(deleteMsgid="42", timetag="1", type="7", from_="a", to="b")
    )
    assert answer == {"code": 200}


@pytest.mark.parametrize(
    ("sender", "to", "kind"), [("bob", "bob", "7"), ("alice", "carol", "7"), ("alice", "bob", "8")]
)
async def test_recall_with_the_wrong_parties_or_type_answers_200_and_recalls_nothing(
    emu: NimEmulator, sender: str, to: str, kind: str
) -> None:
    """NetEase's recall page: a wrong from, to (or type) is treated as a successful recall."""
    sent = data(await send(emu))
    answer = await call(
        emu, "msg/recall", about(sent["msgid"], sent["timetag"], type=kind, from_=sender, to=to)
    )
    assert answer == {"code": 200}
    assert not emu.messages[0].recalled


async def test_recall_after_the_window_is_508_unless_time_is_ignored() -> None:
    """Past recall_window: 508; ignoreTime=1 recalls up to 30 days back, then 508 too."""
    emu = NimEmulator(KEY, SECRET, recall_window=60)
    sent = data(await send(emu))
    target = about(sent["msgid"], sent["timetag"], type="7", from_="alice", to="bob")
    emu.advance(61)
    late = await call(emu, "msg/recall", target)
    assert late["code"] == 508
    assert not emu.messages[0].recalled
    assert (await call(emu, "msg/recall", target | form(ignoreTime="1")))["code"] == 200
    old = data(await send(emu))
    emu.advance(31 * DAY)
    target |= {"deleteMsgid": str(old["msgid"]), "timetag": str(old["timetag"])}
    assert (await call(emu, "msg/recall", target | form(ignoreTime="1")))["code"] == 508


async def test_a_batch_delivery_can_be_recalled(emu: NimEmulator) -> None:
    """Every delivery of a batch has its own msgid, and recall finds it."""
    answer = await call(
        emu,
        "msg/sendBatchMsg",
        form(fromAccid="alice", toAccids='["bob"]', type="0", body=TEXT_BODY, returnMsgid="true"),
    )
    msgid = answer["msgids"]["bob"]  # type: ignore[index]
    target = about(msgid, answer["timetag"], type="7", from_="alice", to="bob")
    assert (await call(emu, "msg/recall", target))["code"] == 200
    assert emu.messages[0].recalled


async def test_del_msg_one_way_marks_the_message(emu: NimEmulator) -> None:
    """delMsgOneWay: type 13 for p2p; a mismatch is 403; an unknown id is 200."""
    sent = data(await send(emu))
    target = about(sent["msgid"], sent["timetag"], from_="alice", to="bob")
    assert (await call(emu, "msg/delMsgOneWay", target | form(type="14")))["code"] == 403
    assert (await call(emu, "msg/delMsgOneWay", target | form(type="13")))["code"] == 200
    assert emu.messages[0].deleted_one_way
    assert not emu.messages[0].recalled
    target["deleteMsgid"] = "1"
    assert (await call(emu, "msg/delMsgOneWay", target | form(type="13")))["code"] == 200


async def test_broadcast_answers_its_message(emu: NimEmulator) -> None:
    """broadcastMsg answers msg (sender in msg.from, as the Java SDK reads it), times in ms."""
    answer = await call(
        emu,
        "msg/broadcastMsg",
        form(body="abc", from_="alice", isOffline="true", ttl="10", targetOs='["ios","pc"]'),
    )
    msg = answer["msg"]
    assert isinstance(msg, dict)
    assert msg["expireTime"] - msg["createTime"] == 10 * 3_600_000
    assert (msg["body"], msg["isOffline"], msg["targetOs"], msg["from"]) == (
        "abc",
        True,
        ["ios", "pc"],
        "alice",
    )
    assert isinstance(msg["broadcastId"], int)
    (record,) = emu.broadcasts
    assert (record.broadcast_id, record.ttl_hours, record.target_os) == (
        msg["broadcastId"],
        10,
        ("ios", "pc"),
    )


async def test_broadcast_defaults(emu: NimEmulator) -> None:
    """Defaults: not offline, seven days, every platform, no sender."""
    msg = (await call(emu, "msg/broadcastMsg", form(body="abc")))["msg"]
    assert isinstance(msg, dict)
    assert msg["isOffline"] is False
    assert msg["expireTime"] - msg["createTime"] == 168 * 3_600_000
    assert msg["targetOs"] == ["ios", "aos", "pc", "web", "mac"]
    assert "from" not in msg
    assert "fromAccid" not in msg


async def test_broadcast_from_an_unknown_account_is_404(emu: NimEmulator) -> None:
    """from, when given, must be registered."""
    assert (await call(emu, "msg/broadcastMsg", form(body="abc", from_="zed")))["code"] == 404


async def test_del_roam_session_is_recorded(emu: NimEmulator) -> None:
    """delRoamSession: type 1 is p2p, type 2 a team session."""
    assert (await call(emu, "msg/delRoamSession", form(type="2", from_="alice", to="t1"))) == {
        "code": 200
    }
    (deletion,) = emu.roam_deletions
    assert (deletion.from_, deletion.to, deletion.team, deletion.type) == ("alice", "t1", True, 2)
    assert abs(deletion.at - time.time()) < 5


@pytest.mark.parametrize(("kind", "team"), [("1", False), ("2", True), ("3", True)])
async def test_del_roam_session_takes_p2p_team_and_super_team(
    emu: NimEmulator, kind: str, team: bool
) -> None:
    """Java SDK DeleteRoamSessionRequestV1: type 1 p2p, 2 team, 3 super team (to is its tid)."""
    answer = await call(emu, "msg/delRoamSession", form(type=kind, from_="alice", to="bob"))
    assert answer == {"code": 200}
    (deletion,) = emu.roam_deletions
    assert (deletion.type, deletion.team) == (int(kind), team)
