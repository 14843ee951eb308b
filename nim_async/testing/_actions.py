"""What each action does once its parameters passed the rules: one function per action.

Each handler gets the `World` (under the emulator's lock) and a `Request` whose
form already satisfies `_rules`, so it may parse the values it reads directly.
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._records import (
    NosTask,
    ReadReceipt,
    RoamDeletion,
    StoredBroadcast,
    StoredMessage,
    Upload,
)
from ._rules import TARGET_OS
from ._wire import Answer, Request, nim_answer, nim_error
from ._world import World

__all__ = ["ACTIONS"]

_HOUR_MS = 3_600_000
_THIRTY_DAYS_MS = 30 * 24 * _HOUR_MS  # facts: ignoreTime=1 reaches back 30 days
_DEFAULT_TTL_HOURS = 7 * 24  # seeds/003 broadcastMsg ttl: "默认7天"


def _message(
    req: Request,
    form: dict[str, str],
    *,
    msgid: int | None,
    notification_id: int | None = None,
    timetag: int,
    from_: str,
    to: str,
    team: bool,
) -> StoredMessage:
    notification = msgid is None  # custom notifications carry attach and have no msgid
    return StoredMessage(
        action=req.action,
        msgid=msgid,
        timetag=timetag,
        from_=from_,
        to=to,
        team=team,
        type=None if notification else int(form["type"]),
        body=None if notification else form["body"],
        attach=form["attach"] if notification else None,
        form=form,
        notification_id=notification_id,
    )


def _send(world: World, req: Request, *, kind: str, with_msgid: bool) -> Answer:
    form = req.form
    team = int(form[kind]) == 1  # ope / msgtype: 0 p2p, 1 team
    sender, to = form["from"], form["to"]
    problem = world.account_problem("from", sender) or world.recipient_problem(
        team, "to", to, sender
    )
    if problem is not None:
        return problem
    msgid = world.next_msgid() if with_msgid else None
    message = _message(
        req,
        dict(form),
        msgid=msgid,
        notification_id=None if with_msgid else world.next_notification_id(),
        timetag=world.now_ms(),
        from_=sender,
        to=to,
        team=team,
    )
    world.store(message)
    if not with_msgid:
        return nim_answer()
    # seeds/003 sendMsg answer: data.msgid, data.timetag, data.antispam
    return nim_answer(data={"msgid": msgid, "timetag": message.timetag, "antispam": False})


def send_msg(world: World, req: Request) -> Answer:
    """msg/sendMsg: one message to an account (ope=0) or a team (ope=1)."""
    return _send(world, req, kind="ope", with_msgid=True)


def send_attach_msg(world: World, req: Request) -> Answer:
    """msg/sendAttachMsg: one custom notification (no msgid) to an account or a team."""
    return _send(world, req, kind="msgtype", with_msgid=False)


def _batch(world: World, req: Request, *, notification: bool) -> Answer:
    form = req.form
    sender = form["fromAccid"]
    problem = world.account_problem("fromAccid", sender)
    if problem is not None:
        return problem
    timetag = world.now_ms()
    # One form for all deliveries of the call: a million recipients must not mean a million copies.
    shared = dict(form)
    msgids: dict[str, int] = {}
    unregister: list[str] = []
    # A recipient named twice gets one delivery; answers keep the input order.
    for accid in dict.fromkeys(json.loads(form["toAccids"])):
        if not world.has_account(accid):
            unregister.append(accid)
            continue
        msgid = None if notification else world.next_msgid()
        delivery = _message(
            req,
            shared,
            msgid=msgid,
            # Each delivery is its own notification, with its own message copy.
            notification_id=world.next_notification_id() if notification else None,
            timetag=timetag,
            from_=sender,
            to=accid,
            team=False,
        )
        world.store(delivery)
        if msgid is not None:
            msgids[accid] = msgid
    fields: dict[str, Any] = {} if notification else {"timetag": timetag}
    # Java SDK SendBatchAttachMsgResponseV1: with checkAccidAsyncEnable=true the
    # accounts are checked asynchronously, and the answer has no unregister at all.
    unchecked = notification and form.get("checkAccidAsyncEnable") == "true"
    if unregister and not unchecked:
        # facts: documented both as an array and as a JSON-encoded string of one.
        string = world.unregister_as_string
        fields["unregister"] = json.dumps(unregister) if string else unregister
    if not notification and form.get("returnMsgid") == "true":
        fields["msgids"] = msgids
    return nim_answer(**fields)


def send_batch_msg(world: World, req: Request) -> Answer:
    """msg/sendBatchMsg: one message per registered account of ``toAccids``."""
    return _batch(world, req, notification=False)


def send_batch_attach_msg(world: World, req: Request) -> Answer:
    """msg/sendBatchAttachMsg: one custom notification per registered account."""
    return _batch(world, req, notification=True)


def _upload(world: World, req: Request, content: bytes) -> Answer:
    form = req.form
    https = form.get("ishttps") == "true"
    upload_id = str(uuid.uuid4())
    url = f"{'https' if https else 'http'}://{req.host}/nos/{upload_id}"
    world.uploads[upload_id] = Upload(
        id=upload_id,
        url=url,
        content=content,
        type=form.get("type"),
        tag=form.get("tag"),
        expire_sec=int(form["expireSec"]) if "expireSec" in form else None,
        https=https,
        created_at=world.now(),
    )
    return nim_answer(url=url)


def upload(world: World, req: Request) -> Answer:
    """msg/upload: store base64 ``content``; answer its URL."""
    text = req.form["content"].replace("\r", "").replace("\n", "")
    return _upload(world, req, base64.b64decode(text))


def file_upload(world: World, req: Request) -> Answer:
    """msg/fileUpload: store the multipart ``content`` part; answer its URL."""
    content = req.files.get("content")
    if content is None:
        # A "content" part without a filename arrives as a text field.
        content = req.form["content"].encode()
    return _upload(world, req, content)


def clean_nos(world: World, req: Request) -> Answer:
    """job/nos/del: remove matching uploads at once; answer a task id."""
    form = req.form
    start, end = int(form["startTime"]), int(form["endTime"])
    content_type, tag = form.get("contentType"), form.get("tag")
    # seeds/003: a file is cleaned when its type contains contentType and its tag equals tag.
    removed = tuple(
        up.id
        for up in world.uploads.values()
        if start <= int(up.created_at * 1000) <= end
        and (content_type is None or content_type in (up.type or ""))
        and (tag is None or up.tag == tag)
    )
    for upload_id in removed:
        del world.uploads[upload_id]
    task = NosTask(uuid.uuid4().hex, start, end, content_type, tag, removed, world.now())
    world.nos_tasks.append(task)
    return nim_answer(data={"taskid": task.taskid})


def _find(
    world: World, req: Request, team_type: int, *, strict: bool = True
) -> StoredMessage | Answer | None:
    """The stored message a call names by deleteMsgid, from, to and type.

    ``None`` when there is none; when one has that msgid but other parties or
    type, a 403 if ``strict``, else ``None`` too.
    """
    form = req.form
    message = world.by_msgid.get(int(form["deleteMsgid"]))
    if message is None:
        return None
    team = int(form["type"]) == team_type
    if (message.from_, message.to, message.team) != (form["from"], form["to"], team):
        if not strict:
            return None
        return nim_error(403, "from, to or type do not match message deleteMsgid")
    return message


def recall(world: World, req: Request) -> Answer:
    """msg/recall: mark a stored message recalled, within the recall window.

    A message that does not exist, or whose ``from``, ``to`` or ``type`` differ,
    answers 200 and nothing changes.
    """
    # NetEase's recall page: a wrong deleteMsgid, from or to is treated as a
    # successful recall (200); facts: recalling a message that does not exist answers 200.
    found = _find(world, req, team_type=8, strict=False)
    if not isinstance(found, StoredMessage):
        return found or nim_answer()
    age_ms = world.now_ms() - found.timetag
    if "ignoreTime" in req.form:
        if age_ms > _THIRTY_DAYS_MS:
            return nim_error(508, "message is older than 30 days, even with ignoreTime")
    elif age_ms > world.recall_window * 1000:
        return nim_error(508, f"message is older than the {world.recall_window:g} s recall window")
    found.recalled = True
    return nim_answer()


def delete_one_way(world: World, req: Request) -> Answer:
    """msg/delMsgOneWay: mark a stored message deleted for its recipients.

    An unknown msgid answers 200; a msgid whose parties or type differ, 403.
    """
    found = _find(world, req, team_type=14)
    if not isinstance(found, StoredMessage):
        return found or nim_answer()
    found.deleted_one_way = True
    return nim_answer()


def broadcast(world: World, req: Request) -> Answer:
    """msg/broadcastMsg: record a broadcast; answer its ``msg`` object."""
    form = req.form
    sender = form.get("from")
    if sender is not None:
        problem = world.account_problem("from", sender)
        if problem is not None:
            return problem
    ttl = int(form.get("ttl", _DEFAULT_TTL_HOURS))
    target = tuple(json.loads(form["targetOs"])) if "targetOs" in form else TARGET_OS
    created = world.now_ms()
    record = StoredBroadcast(
        broadcast_id=world.next_broadcast_id(),
        body=form["body"],
        from_=sender,
        is_offline=form.get("isOffline") == "true",
        ttl_hours=ttl,
        target_os=target,
        create_time=created,
        expire_time=created + ttl * _HOUR_MS,
    )
    world.broadcasts.append(record)
    msg: dict[str, Any] = {
        "expireTime": record.expire_time,
        "body": record.body,
        "createTime": record.create_time,
        "isOffline": record.is_offline,
        "broadcastId": record.broadcast_id,
        "targetOs": list(record.target_os),
    }
    if sender is not None:
        # Java SDK BroadcastMessageResponseV1 / MessageV1Service read msg.from.
        msg["from"] = sender
    return nim_answer(msg=msg)


def delete_roam_session(world: World, req: Request) -> Answer:
    """msg/delRoamSession: record the deletion of a p2p (1), team (2) or super team (3) session."""
    form = req.form
    kind = int(form["type"])
    world.roam_deletions.append(
        RoamDeletion(form["from"], form["to"], team=kind != 1, at=world.now(), type=kind)
    )
    return nim_answer()


def mark_read(world: World, req: Request) -> Answer:
    """msg/markReadMsg: record a p2p read receipt; answer ``data.timestamp`` (ms)."""
    form = req.form
    reader, sender = form["from"], form["to"]
    problem = world.account_problem("from", reader) or world.account_problem("to", sender)
    if problem is not None:
        return problem
    stamp = world.now_ms()
    receipt = ReadReceipt(
        action=req.action,
        reader=reader,
        to=sender,
        team=False,
        msgid_client=form["msgidClient"],
        msgids=(),
        failed=(),
        timestamp=stamp,
    )
    world.read_receipts.append(receipt)
    # Java SDK MarkReadMessageResponseV1: data.timestamp, a Long.
    return nim_answer(data={"timestamp": stamp})


def mark_read_team(world: World, req: Request) -> Answer:
    """msg/markReadTeamMsg: mark team messages read by ``accid``; answer ``data.errMsgIds``.

    An id fails when no message has it, when its message is not in team ``tid``,
    or when that message was recalled or deleted.
    """
    form = req.form
    reader, tid = form["accid"], str(int(form["tid"]))
    problem = world.account_problem("accid", reader) or world.recipient_problem(
        True, "tid", tid, reader, sender_param="accid"
    )
    if problem is not None:
        return problem
    marked: list[int] = []
    failed: list[int] = []
    for msgid in dict.fromkeys(json.loads(form["msgids"])):
        message = world.by_msgid.get(msgid)
        if (
            message is None
            or not message.team
            or message.to != tid
            or message.recalled
            or message.deleted
        ):
            failed.append(msgid)
            continue
        message.read_by.add(reader)
        marked.append(msgid)
    receipt = ReadReceipt(
        action=req.action,
        reader=reader,
        to=tid,
        team=True,
        msgid_client=None,
        msgids=tuple(marked),
        failed=tuple(failed),
        timestamp=world.now_ms(),
    )
    world.read_receipts.append(receipt)
    # Java SDK MessageV1Service reads data.errMsgIds as a List<Long>.
    return nim_answer(data={"errMsgIds": failed})


def delete_message(world: World, req: Request) -> Answer:
    """msg/delMsg: mark a stored message deleted (type 7 p2p, 8 team).

    An unknown msgid answers 200; a msgid whose parties or type differ, 403
    (as ``msg/delMsgOneWay``).
    """
    found = _find(world, req, team_type=8)
    if not isinstance(found, StoredMessage):
        return found or nim_answer()
    found.deleted = True
    return nim_answer()


# Message.java (Java SDK history): fromclienttype 32 is REST, the server API.
_REST_CLIENT = 32


@functools.lru_cache(maxsize=256)
def _kept(option: str) -> bool:
    # A message sent with option history:false is not kept (seeds/003 sendMsg option:
    # "history: 该消息是否存云端历史，默认true"). One parse per distinct option.
    return json.loads(option).get("history", True) is not False


def _in_history(message: StoredMessage) -> bool:
    # Custom notifications have no msgid and are no messages: never in the history.
    if message.msgid is None or message.team:
        return False
    option = message.form.get("option")
    return option is None or _kept(option)


def _no_sense(message: StoredMessage) -> bool:
    # Java SDK QuerySessionHistoryMessageRequestV1, includeNoSenseMsg: messages sent
    # with msgSenderNoSense=1 or msgReceiverNoSense=1, recalled or deleted one way.
    form = message.form
    return (
        message.deleted_one_way
        or form.get("msgSenderNoSense") == "1"
        or form.get("msgReceiverNoSense") == "1"
    )


def _history_entry(message: StoredMessage) -> dict[str, Any]:
    # Java SDK history Message: from, msgid, msgidclient, sendtime, type, fromclienttype, body.
    return {
        "from": message.from_,
        "msgid": message.msgid,
        "msgidclient": message.msgid_client,
        "sendtime": message.timetag,
        "type": message.type,
        "fromclienttype": _REST_CLIENT,
        "body": message.body,
    }


def query_session_msg(world: World, req: Request) -> Answer:
    """history/querySessionMsg: one page of a p2p session's stored messages, both directions.

    Messages of ``sendMsg`` and ``sendBatchMsg`` sent between ``begintime`` and
    ``endtime`` (both included), ordered by time and then msgid, newest first
    unless ``reverse=1``; at most ``limit``. Left out: custom notifications,
    messages sent with ``option`` history false, recalled or deleted ones
    (``msg/recall``, ``msg/delMsg``), and, unless ``includeNoSenseMsg=true``,
    those deleted one way or sent with a no-sense flag. ``excludeMsgid`` is read
    as an anchor: the page starts after that message, when it is in the range.
    """
    form = req.form
    one, other = form["from"], form["to"]
    begin, end = int(form["begintime"]), int(form["endtime"])
    types = {int(code) for code in form["type"].split(",")} if "type" in form else None
    include_no_sense = form.get("includeNoSenseMsg") == "true"
    found = [
        message
        for message in world.messages
        if begin <= message.timetag <= end
        and (message.from_, message.to) in ((one, other), (other, one))
        and _in_history(message)
        and not (message.recalled or message.deleted)
        and (include_no_sense or not _no_sense(message))
        and (types is None or message.type in types)
    ]
    # reverse: "1 按时间正序排列，2 按时间降序排列 ... 默认是按降序排列".
    found.sort(key=lambda m: (m.timetag, m.msgid), reverse=form.get("reverse", "2") == "2")
    if "excludeMsgid" in form:
        anchor = int(form["excludeMsgid"])
        at = next((i for i, m in enumerate(found) if m.msgid == anchor), None)
        if at is not None:
            found = found[at + 1 :]
    page = [_history_entry(message) for message in found[: int(form["limit"])]]
    # Both official SDKs read msgs as a string holding the array, or as the array.
    msgs = json.dumps(page, ensure_ascii=False) if world.msgs_as_string else page
    return nim_answer(size=len(page), msgs=msgs)


def delete_broadcast(world: World, req: Request) -> Answer:
    """history/delBroadcastMsgById: mark a stored broadcast deleted.

    An unknown (or already deleted) broadcastId answers 200, as a recall of an
    unknown message does: there is nothing left to delete.
    """
    broadcast_id = int(req.form["broadcastId"])
    for i, record in enumerate(world.broadcasts):
        if record.broadcast_id == broadcast_id:
            world.broadcasts[i] = attrs.evolve(record, deleted=True)
    return nim_answer()


Handler = Callable[[World, Request], Answer]

ACTIONS: Mapping[str, Handler] = {
    "msg/sendMsg": send_msg,
    "msg/sendBatchMsg": send_batch_msg,
    "msg/sendAttachMsg": send_attach_msg,
    "msg/sendBatchAttachMsg": send_batch_attach_msg,
    "msg/upload": upload,
    "msg/fileUpload": file_upload,
    "job/nos/del": clean_nos,
    "msg/recall": recall,
    "msg/broadcastMsg": broadcast,
    "msg/delMsgOneWay": delete_one_way,
    "msg/delRoamSession": delete_roam_session,
    # Java SDK MessageV1UrlContext: the four actions NetEase's 消息功能 page does not cover.
    "msg/markReadMsg": mark_read,
    "msg/markReadTeamMsg": mark_read_team,
    "msg/delMsg": delete_message,
    "history/delBroadcastMsgById": delete_broadcast,
    "history/querySessionMsg": query_session_msg,
}
