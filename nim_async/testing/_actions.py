"""What each action does once its parameters passed the rules: one function per action.

Each handler gets the `World` (under the emulator's lock) and a `Request` whose
form already satisfies `_rules`, so it may parse the values it reads directly.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._records import NosTask, RoamDeletion, StoredBroadcast, StoredMessage, Upload
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
        req, dict(form), msgid=msgid, timetag=world.now_ms(), from_=sender, to=to, team=team
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
            req, shared, msgid=msgid, timetag=timetag, from_=sender, to=accid, team=False
        )
        world.store(delivery)
        if msgid is not None:
            msgids[accid] = msgid
    fields: dict[str, Any] = {} if notification else {"timetag": timetag}
    if unregister:
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


def _find(world: World, req: Request, team_type: int) -> StoredMessage | Answer | None:
    form = req.form
    message = world.by_msgid.get(int(form["deleteMsgid"]))
    if message is None:
        return None
    team = int(form["type"]) == team_type
    if (message.from_, message.to, message.team) != (form["from"], form["to"], team):
        return nim_error(403, "from, to or type do not match message deleteMsgid")
    return message


def recall(world: World, req: Request) -> Answer:
    """msg/recall: mark a stored message recalled, within the recall window."""
    found = _find(world, req, team_type=8)
    if not isinstance(found, StoredMessage):
        # facts: recalling a message that does not exist answers 200.
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
    """msg/delMsgOneWay: mark a stored message deleted for its recipients."""
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
        msg["fromAccid"] = sender
    return nim_answer(msg=msg)


def delete_roam_session(world: World, req: Request) -> Answer:
    """msg/delRoamSession: record the deletion of a p2p (type 1) or team (type 2) session."""
    form = req.form
    team = int(form["type"]) == 2
    world.roam_deletions.append(RoamDeletion(form["from"], form["to"], team, world.now()))
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
}
