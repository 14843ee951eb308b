"""Every NIM endpoint as a declaration: its action, its keywords, and how to read its answer.

``NimClient``'s methods are thin: each hands its arguments and one of these
specs to the pipeline. A spec maps each keyword to the NIM parameter(s) it
fills (``_fields``); the limits on the written values are in ``_validate``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from . import _actions as act
from ._errors import InvalidRequest
from ._fields import (
    Form,
    Param,
    boolean,
    codes,
    epoch_millis,
    file_content,
    int_list,
    integer,
    json_text,
    json_value,
    message_body,
    message_id,
    message_option,
    not_a_list,
    only_false,
    only_true,
    push,
    safe_repr,
    save,
    session_type,
    string,
    string_list,
    upload_content,
    zero_one,
)
from ._models import Broadcast, HistoryMessage, SendResult, SessionHistory

__all__ = [
    "BROADCAST",
    "CLEAN_NOS",
    "DEL_BROADCAST",
    "DEL_MSG",
    "DEL_MSG_ONE_WAY",
    "DEL_ROAM_SESSION",
    "ENDPOINTS",
    "FILE_UPLOAD",
    "MARK_READ",
    "MARK_TEAM_READ",
    "QUERY_SESSION_MSG",
    "RECALL",
    "SEND_ATTACH_MSG",
    "SEND_BATCH_ATTACH_MSG",
    "SEND_BATCH_MSG",
    "SEND_MSG",
    "UPLOAD",
    "Answer",
    "Endpoint",
    "answer_bool",
    "answer_int",
]

T = TypeVar("T")
Answer = dict[str, Any]


# One keyword of a form: its name, encoder, whether required, its NIM name, and
# (for a parameter filled from several keywords) all of them.
_Step = tuple[str, Callable[[Any], Form], bool, str, tuple[str, ...]]


def _plan(endpoint: Endpoint[Any]) -> tuple[_Step, ...]:
    return tuple(
        (p.keyword, p.encode, p.required, p.nim, p.keywords if p.also else ())
        for p in endpoint.params
    )


@attrs.frozen
class Endpoint(Generic[T]):
    """One NIM action: its path, keywords, answer, and whether repeating it is harmless.

    Args:
        action: The path without ``.action``, e.g. ``"msg/sendMsg"``.
        params: The keywords that become form fields, in the order of NetEase's documentation.
        decode: Turns the server's JSON answer (code 200) into the method's result.
        idempotent: A second call has no further effect, so an ambiguous
            failure may be retried by default.
        recipients: The keyword chunked into ``toAccids`` (batch actions only).
    """

    action: str
    params: tuple[Param, ...]
    decode: Callable[[Answer], T]
    idempotent: bool = False
    recipients: str | None = None
    # What form() does per keyword, worked out once per endpoint, not per call.
    _plan: tuple[_Step, ...] = attrs.field(
        init=False, repr=False, eq=False, default=attrs.Factory(_plan, takes_self=True)
    )
    # Whether a form may hold a file part (msg/fileUpload), to look for one only then.
    uploads: bool = attrs.field(
        init=False,
        repr=False,
        eq=False,
        default=attrs.Factory(
            lambda self: any(p.encode is file_content for p in self.params), takes_self=True
        ),
    )

    def form(self, arguments: Mapping[str, object]) -> Form:
        """Write the method's ``arguments`` as form fields, checking each one's type.

        Raises:
            InvalidRequest: An argument of a type its parameter refuses, or a
                required one that is None.
        """
        fields: Form = {}
        for keyword, encode, required, nim, keywords in self._plan:
            if keywords:
                fields.update(encode(tuple(arguments[k] for k in keywords)))
                continue
            value = arguments[keyword]
            if value is not None:
                fields.update(encode(value))
            elif required:
                raise InvalidRequest(nim, "given (it is required)", "None")
        return fields


def _no_result(answer: Answer) -> None:
    return


def _raw_answer(answer: Answer) -> Answer:
    # Batch chunks: the runner reads each answer into its chunk's outcome.
    return answer


def answer_bool(value: object) -> bool:
    """A boolean of an answer, read strictly: the string "false" is not True.

    Raises:
        ValueError: Neither a JSON boolean nor the strings true / false.
    """
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError(f"not a boolean: {value!r}")


def answer_int(value: object) -> int:
    """An integer of an answer: a JSON number without a fraction, or its decimal string.

    Raises:
        ValueError: Anything else (a boolean, 1.5, 1e400, "abc").
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"not an integer: {value!r}"[:100])


def _send_result(answer: Answer) -> SendResult:
    data = answer.get("data") or {}
    return SendResult(
        answer_int(data["msgid"]),
        answer_int(data["timetag"]),
        answer_bool(data.get("antispam", False)),
    )


def _broadcast(answer: Answer) -> Broadcast:
    msg = answer.get("msg") or {}
    expire = msg.get("expireTime")
    sender = msg.get("from")
    return Broadcast(
        broadcast_id=answer_int(msg["broadcastId"]),
        body=str(msg.get("body", "")),
        create_time=answer_int(msg["createTime"]),
        expire_time=None if expire is None else answer_int(expire),
        is_offline=answer_bool(msg.get("isOffline", False)),
        target_os=tuple(str(name) for name in msg.get("targetOs") or ()),
        # Both official SDKs read the sender from msg.from (Java BroadcastMessageResponseV1).
        from_=None if sender is None else str(sender),
    )


def _read_timestamp(answer: Answer) -> int:
    # Java SDK MarkReadMessageResponseV1: data.timestamp (Long).
    return answer_int((answer.get("data") or {})["timestamp"])


def _unmarked_msgids(answer: Answer) -> list[int]:
    # Java SDK MessageV1Service (markReadTeamMsg): data.errMsgIds → List<Long>.
    return [answer_int(msgid) for msgid in (answer.get("data") or {}).get("errMsgIds") or ()]


def _optional_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"not a string: {value!r}"[:100])


def _history_message(item: object) -> HistoryMessage:
    # Java SDK history Message.fromJson: from, msgid (Long), msgidclient (all lower
    # case here, unlike markReadMsg's msgidClient), sendtime, type, fromclienttype, body.
    if not isinstance(item, Mapping):
        raise TypeError(f"a message that is not a JSON object: {item!r}"[:100])
    sender = item["from"]
    if not isinstance(sender, str):
        raise ValueError(f"not an accid: {sender!r}"[:100])
    body = item.get("body")
    if body is not None and not isinstance(body, str):
        # Both official SDKs turn a body sent as an object back into JSON text.
        body = json_text(body)
    client_type = item.get("fromclienttype")
    return HistoryMessage(
        from_=sender,
        msgid=answer_int(item["msgid"]),
        msgid_client=_optional_text(item.get("msgidclient")),
        sendtime=answer_int(item["sendtime"]),
        type=answer_int(item["type"]),
        from_client_type=None if client_type is None else answer_int(client_type),
        body=body,
    )


def _session_history(answer: Answer) -> SessionHistory:
    # Java SDK HistoryV1Service and the Go SDK's history service read msgs as a
    # string holding a JSON array, or as the array itself; both leave it out when absent.
    msgs = answer.get("msgs")
    if isinstance(msgs, str):
        try:
            msgs = json.loads(msgs) if msgs else []
        except RecursionError:
            raise ValueError("msgs nested too deeply") from None
    if msgs is None:
        msgs = []
    if not isinstance(msgs, list):
        raise ValueError(f"msgs is not a JSON array: {msgs!r}"[:100])
    messages = tuple(_history_message(item) for item in msgs)
    size = answer.get("size")
    return SessionHistory(len(messages) if size is None else answer_int(size), messages)


def _url(answer: Answer) -> str:
    url = answer["url"]
    if not isinstance(url, str) or not url:
        raise ValueError(f"not a URL: {url!r}"[:100])
    return url


def _taskid(answer: Answer) -> str:
    return str((answer.get("data") or {})["taskid"])


def _required(keyword: str, nim: str, encode: Callable[[Any], Form]) -> Param:
    return Param(keyword, encode, nim, required=True)


def _text(keyword: str, nim: str) -> Param:
    return Param(keyword, string(nim), nim)


# sendMsg and sendBatchMsg: the rows both seed tables share.
_MESSAGE = (
    _required("body", "type, body", message_body),
    _text("msg_desc", "msgDesc"),
    Param("option", message_option, "option"),
    Param("push", push, "pushcontent, payload"),
    Param("ext", json_value("ext"), "ext"),
    _text("bid", "bid"),
    Param("use_yidun", only_false("useYidun", "0"), "useYidun"),
    Param("yidun_anti_cheating", json_value("yidunAntiCheating", text=False), "yidunAntiCheating"),
    # Java SDK SendMessageRequestV1 / SendBatchMessageRequestV1: JSON, 长度限制 1024 字符.
    Param("yidun_anti_spam_ext", json_value("yidunAntiSpamExt", text=False), "yidunAntiSpamExt"),
    _text("env", "env"),
)

# sendAttachMsg and sendBatchAttachMsg: the rows both seed tables share.
_NOTIFICATION = (
    _required("attach", "attach", json_value("attach")),
    Param("push", push, "pushcontent, payload"),
    _text("sound", "sound"),
    Param("offline", save("save"), "save"),
    Param("option", message_option, "option"),
    Param("force_push", boolean("isForcePush"), "isForcePush"),
    _text("force_push_content", "forcePushContent"),
    _text("env", "env"),
    # Java SDK SendAttachMsgRequestV1: 是否异步检查用户账号 ID, 默认 false.
    Param("check_accid_async", boolean("checkAccidAsyncEnable"), "checkAccidAsyncEnable"),
)

# upload and fileUpload: the same optional rows.
_UPLOAD_OPTIONS = (
    _text("type", "type"),
    Param("https", boolean("ishttps"), "ishttps"),
    Param("expire_sec", integer("expireSec"), "expireSec"),
    _text("tag", "tag"),
)


def _message_types(value: object) -> Form:
    """``types``: message type codes, sent comma-separated (``"0,1,2,3"``); which codes
    the server takes is a rule of ``_validate``."""
    accepts = "a non-empty iterable of message type codes (ints)"
    if not_a_list(value) or not isinstance(value, Iterable):
        raise InvalidRequest("type", accepts, f"{type(value).__name__} {safe_repr(value)}"[:80])
    items = list(value)
    # Bounded before str(): an int past 4300 digits has no decimal text.
    if not items or not all(
        isinstance(item, int) and not isinstance(item, bool) and -(2**63) <= item < 2**63
        for item in items
    ):
        raise InvalidRequest("type", accepts, safe_repr(items)[:80])
    return {"type": ",".join(str(item) for item in items)}


def _message_at(recall_type: str, team_type: str) -> tuple[Param, ...]:
    """The rows that point recall and delMsgOneWay at one message.

    NetEase's 消息功能 page lists the same rows for both.
    """
    return (
        _required("msgid", "deleteMsgid", message_id("deleteMsgid")),
        _required("timetag", "timetag", integer("timetag")),
        _required("team", "type", codes("type", recall_type, team_type)),
        _required("from_", "from", string("from")),
        _required("to", "to", string("to")),
        _text("msg", "msg"),
    )


SEND_MSG = Endpoint(
    act.SEND_MSG,
    (
        _required("from_", "from", string("from")),
        _required("team", "ope", codes("ope", "0", "1")),
        _required("to", "to", string("to")),
        *_MESSAGE,
        Param("antispam", boolean("antispam"), "antispam"),
        Param("antispam_custom", json_value("antispamCustom", text=False), "antispamCustom"),
        Param("force_push_list", string_list("forcepushlist"), "forcepushlist"),
        _text("force_push_content", "forcepushcontent"),
        Param("force_push_all", boolean("forcepushall"), "forcepushall"),
        Param("mark_read", zero_one("markRead"), "markRead"),
        Param("check_friend", boolean("checkFriend"), "checkFriend"),
        Param("sub_type", integer("subType"), "subType"),
        Param("sender_no_sense", zero_one("msgSenderNoSense"), "msgSenderNoSense"),
        Param("receiver_no_sense", zero_one("msgReceiverNoSense"), "msgReceiverNoSense"),
        # Java SDK SendMessageRequestV1: async (是否异步, 默认 false) and the robot
        # fields (群聊中有效), with no documented length limits.
        Param("async_", boolean("async"), "async"),
        _text("robot_account", "robotAccount"),
        _text("robot_topic", "robotTopic"),
        _text("robot_function", "robotFunction"),
        _text("robot_custom_content", "robotCustomContent"),
    ),
    _send_result,
)

SEND_BATCH_MSG = Endpoint(
    act.SEND_BATCH_MSG,
    (
        _required("from_", "fromAccid", string("fromAccid")),
        *_MESSAGE,
        Param("return_msgid", only_true("returnMsgid", "true"), "returnMsgid"),
        # Java SDK SendBatchMessageRequestV1: msgSenderNoSense (发送方是否无感知).
        Param("sender_no_sense", zero_one("msgSenderNoSense"), "msgSenderNoSense"),
    ),
    _raw_answer,
    recipients="to",
)

SEND_ATTACH_MSG = Endpoint(
    act.SEND_ATTACH_MSG,
    (
        _required("from_", "from", string("from")),
        _required("team", "msgtype", codes("msgtype", "0", "1")),
        _required("to", "to", string("to")),
        *_NOTIFICATION,
        Param("force_push_all", boolean("forcePushAll"), "forcePushAll"),
        Param("force_push_list", string_list("forcePushList"), "forcePushList"),
    ),
    _no_result,
)

SEND_BATCH_ATTACH_MSG = Endpoint(
    act.SEND_BATCH_ATTACH_MSG,
    (_required("from_", "fromAccid", string("fromAccid")), *_NOTIFICATION),
    _raw_answer,
    recipients="to",
)

# A repeated upload stores a second copy and nothing else: safe to retry.
UPLOAD = Endpoint(
    act.UPLOAD,
    (_required("content", "content", upload_content), *_UPLOAD_OPTIONS),
    _url,
    idempotent=True,
)

FILE_UPLOAD = Endpoint(
    act.FILE_UPLOAD,
    (_required("content", "content", file_content), *_UPLOAD_OPTIONS),
    _url,
    idempotent=True,
)

# Each call creates a task, and the server caps tasks per day: not repeated.
CLEAN_NOS = Endpoint(
    act.CLEAN_NOS,
    (
        _required("start", "startTime", epoch_millis("startTime")),
        _required("end", "endTime", epoch_millis("endTime")),
        _text("content_type", "contentType"),
        _text("tag", "tag"),
    ),
    _taskid,
)

# Recalling or deleting twice leaves the same state (facts: recalling a message
# that does not exist answers 200), so an ambiguous failure may be retried.
RECALL = Endpoint(
    act.RECALL,
    (
        *_message_at("7", "8"),
        Param("ignore_time", only_true("ignoreTime", "1"), "ignoreTime"),
        Param("push", push, "pushcontent, payload"),
        _text("env", "env"),
        Param("attach", json_value("attach"), "attach"),
    ),
    _no_result,
    idempotent=True,
)

DEL_MSG_ONE_WAY = Endpoint(
    act.DEL_MSG_ONE_WAY, _message_at("13", "14"), _no_result, idempotent=True
)

DEL_ROAM_SESSION = Endpoint(
    act.DEL_ROAM_SESSION,
    (
        Param("team", session_type, "type", required=True, also=("super_team",)),
        _required("from_", "from", string("from")),
        _required("to", "to", string("to")),
    ),
    _no_result,
    idempotent=True,
)

# A read receipt repeated marks the same message read again: harmless.
MARK_READ = Endpoint(
    act.MARK_READ,
    (
        _required("from_", "from", string("from")),
        _required("to", "to", string("to")),
        _required("msgid_client", "msgidClient", string("msgidClient")),
    ),
    _read_timestamp,
    idempotent=True,
)

MARK_TEAM_READ = Endpoint(
    act.MARK_TEAM_READ,
    (
        _required("accid", "accid", string("accid")),
        _required("tid", "tid", integer("tid")),
        _required("msgids", "msgids", int_list("msgids")),
    ),
    _unmarked_msgids,
    idempotent=True,
)

# Java SDK DeleteMessageRequestV1: the rows of recall without msg.
DEL_MSG = Endpoint(act.DEL_MSG, _message_at("7", "8")[:5], _no_result, idempotent=True)

DEL_BROADCAST = Endpoint(
    act.DEL_BROADCAST,
    (_required("broadcast_id", "broadcastId", integer("broadcastId")),),
    _no_result,
    idempotent=True,
)

# Read-only: a repeated query answers the same page (as long as nothing new arrived).
# Rows as Java SDK QuerySessionHistoryMessageRequestV1 and the Go SDK's
# QuerySessionHistoryMessageRequestV1 (history_v1_requests.go) have them.
QUERY_SESSION_MSG = Endpoint(
    act.QUERY_SESSION_MSG,
    (
        _required("from_", "from", string("from")),
        _required("to", "to", string("to")),
        _required("begin", "begintime", epoch_millis("begintime")),
        _required("end", "endtime", epoch_millis("endtime")),
        _required("limit", "limit", integer("limit")),
        # reverse: "1 按时间正序排列，2 按时间降序排列 ... 默认是按降序排列".
        Param("ascending", only_true("reverse", "1"), "reverse"),
        Param("types", _message_types, "type"),
        Param("include_no_sense", only_true("includeNoSenseMsg", "true"), "includeNoSenseMsg"),
        Param("exclude_msgid", message_id("excludeMsgid"), "excludeMsgid"),
    ),
    _session_history,
    idempotent=True,
)

BROADCAST = Endpoint(
    act.BROADCAST,
    (
        _required("body", "body", string("body")),
        _text("from_", "from"),
        Param("offline", boolean("isOffline"), "isOffline"),
        Param("ttl_hours", integer("ttl"), "ttl"),
        Param("target_os", string_list("targetOs"), "targetOs"),
    ),
    _broadcast,
)

# Method name on NimClient → its spec (the docs and the tests walk this).
ENDPOINTS: Mapping[str, Endpoint[Any]] = {
    "send_msg": SEND_MSG,
    "send_batch_msg": SEND_BATCH_MSG,
    "send_attach_msg": SEND_ATTACH_MSG,
    "send_batch_attach_msg": SEND_BATCH_ATTACH_MSG,
    "upload": UPLOAD,
    "file_upload": FILE_UPLOAD,
    "clean_nos_files": CLEAN_NOS,
    "recall": RECALL,
    "broadcast": BROADCAST,
    "delete_msg_one_way": DEL_MSG_ONE_WAY,
    "delete_roam_session": DEL_ROAM_SESSION,
    "mark_read_msg": MARK_READ,
    "mark_read_team_msg": MARK_TEAM_READ,
    "delete_msg": DEL_MSG,
    "delete_broadcast": DEL_BROADCAST,
    "query_session_msg": QUERY_SESSION_MSG,
}
