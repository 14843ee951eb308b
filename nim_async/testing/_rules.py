"""The parameter rules of every action, as one table, and the one function that checks them.

A rule is a row (parameter, rule with its limit, required or not), taken from
NetEase's message API documents and its official server SDKs
(yunxin-server-sdk-java, yunxin-server-sdk-golang), which also cover
markReadMsg, markReadTeamMsg, delMsg, history/delBroadcastMsgById and
history/querySessionMsg (NetEase's doc page "查询单聊云端历史消息").
Where the official SDKs spell a parameter otherwise than the doc pages
(``pushContent`` for ``pushcontent``, `SPELLINGS`), both spellings have the row.
`check` first refuses a request that sends both spellings with different
values, then walks an action's rows in order and then its cross-field rules;
the first failure is the 414 ``desc``, and it always names the parameter.
Parameters not in the table are ignored, as the real service does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

import attrs

from ._checks import (
    AntispamCustom,
    Base64,
    FileBytes,
    Flags,
    IntCsv,
    Integer,
    IntIn,
    IntList,
    JsonText,
    MaxChars,
    OneOf,
    Rule,
    StrList,
    SubsetOf,
)

__all__ = [
    "CROSS_RULES",
    "HISTORY_TYPES",
    "MAX_UPLOAD_BYTES",
    "RULES",
    "SPELLINGS",
    "TARGET_OS",
    "Row",
    "check",
]

_DAY_MS = 86_400_000
_CHINA_OFFSET_MS = 8 * 3_600_000  # "today" for job/nos/del is the service's day, UTC+8
MAX_UPLOAD_BYTES = 15 * 1024 * 1024  # seeds/003 upload and fileUpload: "最大15M"


@attrs.frozen
class Row:
    """One row of the table: a parameter, its rule (with the limit), required or not."""

    param: str
    rule: Rule | FileBytes | None = None
    required: bool = False


def _req(param: str, rule: Rule | FileBytes | None = None) -> Row:
    return Row(param, rule, required=True)


_ACCID = MaxChars(32)  # every accid and tid: "最大32字符"
_BOOL = OneOf(("true", "false"))
_PUSH = MaxChars(500)  # pushcontent: "最长500个字符"
# payload: NetEase's 消息功能 pages say "不能超过2k字符" and "2000 characters";
# NetEase's official server SDKs give the exact figure, "不能超过 2048 字符", in the Java
# SDK's SendMessageRequestV1, SendBatchMessageRequestV1, RecallMessageRequestV1,
# SendAttachMsgRequestV1 and SendBatchAttachMsgRequestV1 (yunxin-server-sdk-java,
# src/main/java/com/netease/nim/server/sdk/im/v1/message/request/ and
# .../im/v1/system_notification/request/). One value for every action that takes it.
_PAYLOAD = JsonText(2048, object_only=True)
_ENV = MaxChars(32)
_MSG_TYPES = IntIn((0, 1, 2, 3, 4, 6, 10, 100))
_MSG_OPTION = Flags(
    frozenset(
        {"roam", "history", "sendersync", "push", "route", "badge", "needPushNick"}
        | {"persistent", "sessionUpdate"}
    )
)
_ATTACH_OPTION = Flags(frozenset({"badge", "needPushNick", "route"}))
_TO_ACCIDS = StrList(500, min_items=1, item_chars=32)  # "限500人"
# Java SDK SendBatchAttachMsgRequestV1: toAccids "最多 5000 人" (seeds/000: 5,000 too).
_ATTACH_TO_ACCIDS = StrList(5000, min_items=1, item_chars=32)
# Java SDK SendMessageRequestV1 / SendBatchMessageRequestV1: yidunAntiSpamExt, JSON, ≤1024.
_YIDUN_EXT = JsonText(1024)
_ZERO_ONE = IntIn((0, 1))
# Java SDK RecallMessageRequestV1 and DeleteMessageOneWayRequestV1: msg "最大长度 128 个字符".
_NOTICE = MaxChars(128)
_FILE_TYPE = MaxChars(128)  # Java SDK UploadFileRequestV1: type "最多 128 字符"
TARGET_OS = ("ios", "aos", "pc", "web", "mac")  # broadcastMsg: the default is all
# Java SDK QuerySessionHistoryMessageRequestV1, type: "0:文本，1:图片，2:语音，3:视频，
# 4:地理位置，5:通知，6:文件，10:提示，11:Robot，100:自定义".
HISTORY_TYPES = (0, 1, 2, 3, 4, 5, 6, 10, 11, 100)

# sendAttachMsg and sendBatchAttachMsg: the rows the two seed tables share.
_NOTIFICATION_ROWS = (
    Row("pushcontent", _PUSH),
    Row("payload", _PAYLOAD),
    Row("sound", MaxChars(30)),
    Row("save", IntIn((1, 2))),
    Row("option", _ATTACH_OPTION),
    Row("isForcePush", _BOOL),
    Row("forcePushContent", MaxChars(500)),
    # Java SDK SendBatchAttachMsgRequestV1 and its single-recipient twin: checkAccidAsyncEnable.
    Row("checkAccidAsyncEnable", _BOOL),
)

# Parameters the official server SDKs send in camelCase where NetEase's doc pages (and
# seeds/003) spell them in lower case. Both spellings get the same row, so a request
# from either kind of client is checked alike; a parameter not listed here is spelled
# the same in the docs and in both SDKs' request classes.
# - msg/sendMsg: yunxin-server-sdk-golang, src/im/v1/message/message_v1_requests.go,
#   SendMessageRequestV1: json tags "pushContent", "forcePushAll", "forcePushList",
#   "forcePushContent" (the Go SDK sends each tag as the form field's name,
#   src/core/utils/yunxin_param_utils.go); yunxin-server-sdk-java,
#   src/main/java/com/netease/nim/server/sdk/im/v1/message/request/SendMessageRequestV1.java:
#   @YunxinParam("pushContent"), ("forcePushAll"), ("forcePushContent"), where an
#   earlier version of the class (package com.netease.nim.im.server.sdk.v1.message.request)
#   had "pushcontent", "forcepushall", "forcepushlist", "forcepushcontent".
# - msg/sendBatchMsg: SendBatchMessageRequestV1 in the same two files: "pushContent".
# Not listed: recall's pushcontent (both SDKs' RecallMessageRequestV1 send "pushcontent"),
# and sendAttachMsg / sendBatchAttachMsg, whose SDK classes (SendAttachMsgRequestV1,
# SendBatchAttachMsgRequestV1) send the docs' own names: "pushcontent", "forcePushAll", ...
SPELLINGS: Mapping[str, Mapping[str, str]] = {
    "msg/sendMsg": {
        "pushcontent": "pushContent",
        "forcepushlist": "forcePushList",
        "forcepushall": "forcePushAll",
        "forcepushcontent": "forcePushContent",
    },
    "msg/sendBatchMsg": {"pushcontent": "pushContent"},
}

_DOCUMENTED: Mapping[str, tuple[Row, ...]] = {
    "msg/sendMsg": (
        _req("from", _ACCID),
        _req("ope", _ZERO_ONE),
        _req("to", _ACCID),
        _req("type", _MSG_TYPES),
        _req("body", JsonText(5000)),
        Row("msgDesc", MaxChars(500)),
        Row("antispam", _BOOL),
        Row("antispamCustom", AntispamCustom(5000)),
        Row("option", _MSG_OPTION),
        Row("pushcontent", _PUSH),
        Row("payload", _PAYLOAD),
        Row("ext", MaxChars(1024)),
        # NetEase's 消息功能 page gives sendMsg's force-push list and text no limits
        # (unlike sendAttachMsg's).
        Row("forcepushlist", StrList(None, item_chars=32)),
        Row("forcepushcontent"),
        Row("forcepushall", _BOOL),
        Row("bid"),  # any string: the anti-spam business id
        Row("useYidun", IntIn((0,))),  # "可选值为0"
        Row("yidunAntiCheating", JsonText(1024)),
        Row("markRead", _ZERO_ONE),
        Row("checkFriend", _BOOL),
        Row("subType", Integer(minimum=1)),  # "大于0"
        Row("msgSenderNoSense", _ZERO_ONE),
        Row("msgReceiverNoSense", _ZERO_ONE),
        Row("env", _ENV),
        Row("yidunAntiSpamExt", _YIDUN_EXT),
        Row("async", _BOOL),  # Java SDK SendMessageRequestV1: async, true/false
        # Java SDK SendMessageRequestV1: the robot fields are free text, no documented limit.
        Row("robotAccount"),
        Row("robotTopic"),
        Row("robotFunction"),
        Row("robotCustomContent"),
    ),
    "msg/sendBatchMsg": (
        _req("fromAccid", _ACCID),
        _req("toAccids", _TO_ACCIDS),
        _req("type", _MSG_TYPES),
        _req("body", JsonText(5000)),
        Row("msgDesc", MaxChars(500)),
        Row("option", _MSG_OPTION),
        Row("pushcontent", _PUSH),
        Row("payload", _PAYLOAD),
        Row("ext", MaxChars(1024)),
        Row("useYidun", IntIn((0,))),
        Row("bid"),
        Row("yidunAntiCheating", JsonText(1024)),
        Row("returnMsgid", _BOOL),
        Row("env", _ENV),
        Row("msgSenderNoSense", _ZERO_ONE),  # Java SDK SendBatchMessageRequestV1
        Row("yidunAntiSpamExt", _YIDUN_EXT),
    ),
    "msg/sendAttachMsg": (
        _req("from", _ACCID),
        _req("msgtype", _ZERO_ONE),
        _req("to", _ACCID),
        _req("attach", MaxChars(4096)),
        *_NOTIFICATION_ROWS,
        Row("forcePushAll", _BOOL),
        Row("forcePushList", StrList(100)),  # seeds/000: "up to 100 users"
        Row("env", _ENV),
    ),
    "msg/sendBatchAttachMsg": (
        _req("fromAccid", _ACCID),
        _req("toAccids", _ATTACH_TO_ACCIDS),
        _req("attach", MaxChars(4096)),
        *_NOTIFICATION_ROWS,
        Row("env", _ENV),
    ),
    "msg/upload": (
        _req("content", Base64(MAX_UPLOAD_BYTES)),
        Row("type", _FILE_TYPE),
        Row("ishttps", _BOOL),
        Row("expireSec", Integer(minimum=86_400)),  # "必须大于等于86400"
        Row("tag", MaxChars(32)),
    ),
    "msg/fileUpload": (
        _req("content", FileBytes(MAX_UPLOAD_BYTES)),
        Row("type", _FILE_TYPE),
        Row("ishttps", _BOOL),
        Row("expireSec", Integer(minimum=86_400)),
        Row("tag", MaxChars(32)),
    ),
    "job/nos/del": (
        _req("startTime", Integer(minimum=1)),  # "大于0"
        _req("endTime", Integer(minimum=1)),
        Row("contentType"),  # matched as a substring of the file type
        Row("tag", MaxChars(32)),
    ),
    "msg/recall": (
        _req("deleteMsgid", Integer()),
        _req("timetag", Integer()),
        _req("type", IntIn((7, 8))),
        _req("from", _ACCID),
        _req("to", _ACCID),
        Row("msg", _NOTICE),
        Row("ignoreTime", OneOf(("1",))),  # "1表示绕过撤回时间检测,其它为非法参数"
        # pushcontent past 500 characters is truncated, not refused (seeds/003 recall).
        Row("payload", _PAYLOAD),
        Row("env", _ENV),
        Row("attach", MaxChars(5000)),
    ),
    "msg/broadcastMsg": (
        _req("body", MaxChars(4096)),
        Row("from", _ACCID),
        Row("isOffline", _BOOL),
        Row("ttl", Integer(minimum=1)),  # hours; default 168 (seven days)
        Row("targetOs", SubsetOf(TARGET_OS)),
    ),
    "msg/delMsgOneWay": (
        _req("deleteMsgid", Integer()),
        _req("timetag", Integer()),
        _req("type", IntIn((13, 14))),
        _req("from", _ACCID),
        _req("to", _ACCID),
        Row("msg", _NOTICE),
    ),
    "msg/delRoamSession": (
        # Java SDK DeleteRoamSessionRequestV1: "1-单聊，2-高级群，3-超大群".
        _req("type", IntIn((1, 2, 3))),
        _req("from", _ACCID),
        _req("to", _ACCID),
    ),
    # Java SDK MarkReadMessageRequestV1: the reader, the original sender, the client msg id.
    "msg/markReadMsg": (
        _req("from", _ACCID),
        _req("to", _ACCID),
        _req("msgidClient"),
    ),
    # Java SDK MarkReadTeamMessageRequestV1: msgids is a JSON array of server msgids (longs).
    "msg/markReadTeamMsg": (
        _req("accid", _ACCID),
        _req("tid", Integer()),
        _req("msgids", IntList()),
    ),
    # Java SDK DeleteMessageRequestV1: as recall, type 7 p2p and 8 team.
    "msg/delMsg": (
        _req("deleteMsgid", Integer()),
        _req("timetag", Integer()),
        _req("type", IntIn((7, 8))),
        _req("from", _ACCID),
        _req("to", _ACCID),
    ),
    # Java SDK DeleteBroadcastMessageByIdRequestV1: broadcastId, a long.
    "history/delBroadcastMsgById": (_req("broadcastId", Integer()),),
    # Java SDK QuerySessionHistoryMessageRequestV1 and NetEase's doc page "查询单聊云端历史消息".
    "history/querySessionMsg": (
        _req("from", _ACCID),
        _req("to", _ACCID),
        _req("begintime", Integer()),
        _req("endtime", Integer()),
        # "最多 100 条 ... 小于等于 0，或者大于 100，会提示参数错误".
        _req("limit", Integer(minimum=1, maximum=100)),
        Row("reverse", IntIn((1, 2))),  # "其它返回参数 414 错误"
        Row("type", IntCsv(HISTORY_TYPES)),
        Row("includeNoSenseMsg", _BOOL),
        Row("excludeMsgid", Integer()),
    ),
}


def _with_spellings(action: str, rows: tuple[Row, ...]) -> tuple[Row, ...]:
    # The SDKs' spelling right after the docs' one, with the very same rule.
    other = SPELLINGS.get(action, {})
    spelled: list[Row] = []
    for row in rows:
        spelled.append(row)
        if row.param in other:
            spelled.append(attrs.evolve(row, param=other[row.param]))
    return tuple(spelled)


RULES: Mapping[str, tuple[Row, ...]] = {
    action: _with_spellings(action, rows) for action, rows in _DOCUMENTED.items()
}


def _one_spelling(action: str, form: Mapping[str, str]) -> str | None:
    # Both spellings with different values: refused, naming both. NetEase documents
    # neither spelling as winning, so the service may read either; picking one here
    # would let a test pass on a value production may never use. The same value
    # twice is accepted: whichever the service reads, the request means one thing.
    for doc, sdk in SPELLINGS.get(action, {}).items():
        if doc in form and sdk in form and form[doc] != form[sdk]:
            return f"{doc} and {sdk} are one parameter, sent twice with different values"
    return None


def _text_body(form: Mapping[str, str], now: float) -> str | None:
    # seeds/003 message formats: text (0) and tip (10) bodies are {"msg": "..."};
    # the other documented formats are JSON objects; only 100 (custom) is free.
    kind = int(form["type"])
    data = json.loads(form["body"])
    if kind in (0, 10) and not (isinstance(data, dict) and isinstance(data.get("msg"), str)):
        return 'body must be {"msg": "..."} for type 0 and 10'
    if kind != 100 and not isinstance(data, dict):
        return "body must be a JSON object for this type"
    return None


def _msgid_batch(form: Mapping[str, str], now: float) -> str | None:
    # seeds/003 sendBatchMsg: returnMsgid=true takes at most 100 accounts.
    if form.get("returnMsgid") == "true" and len(json.loads(form["toAccids"])) > 100:
        return "toAccids has more than 100 items with returnMsgid=true"
    return None


def _nos_range(form: Mapping[str, str], now: float) -> str | None:
    # seeds/003 job/nos/del: startTime < endTime, the span 1 to 7 days,
    # endTime before today.
    start, end = int(form["startTime"]), int(form["endTime"])
    if start >= end:
        return "startTime must be less than endTime"
    if not _DAY_MS <= end - start <= 7 * _DAY_MS:
        return "endTime - startTime must be between 1 and 7 days"
    now_ms = int(now * 1000)
    today = (now_ms + _CHINA_OFFSET_MS) // _DAY_MS * _DAY_MS - _CHINA_OFFSET_MS
    if end >= today:
        return "endTime must be earlier than today (UTC+8)"
    return None


def _history_range(form: Mapping[str, str], now: float) -> str | None:
    # Java SDK QuerySessionHistoryMessageRequestV1: "begintime 需要早于 endtime，
    # 否则会返回 {"desc": "bad time", "code": 414}".
    if int(form["begintime"]) >= int(form["endtime"]):
        return "bad time: begintime must be earlier than endtime"
    return None


_CrossRule = Callable[[Mapping[str, str], float], str | None]

CROSS_RULES: Mapping[str, tuple[_CrossRule, ...]] = {
    "msg/sendMsg": (_text_body,),
    "msg/sendBatchMsg": (_text_body, _msgid_batch),
    "job/nos/del": (_nos_range,),
    "history/querySessionMsg": (_history_range,),
}


def _row_problem(row: Row, form: Mapping[str, str], files: Mapping[str, bytes]) -> str | None:
    if isinstance(row.rule, FileBytes):
        content = files.get(row.param)
        if content is None and row.param in form:
            content = form[row.param].encode()
        if content is None:
            return f"missing {row.param}" if row.required else None
        if len(content) > row.rule.max_bytes:
            return f"{row.param} is larger than {row.rule.max_bytes} bytes"
        return None
    value = form.get(row.param)
    # An empty required field is as good as missing; an empty optional one is
    # checked like any value, so "option=" is a 414 and not a silent default.
    if value is None or (row.required and value == ""):
        return f"missing {row.param}" if row.required else None
    problem = row.rule.problem(value) if row.rule is not None else None
    return None if problem is None else f"{row.param} {problem}"


def check(
    action: str, form: Mapping[str, str], files: Mapping[str, bytes], now: float
) -> str | None:
    """Check a call's parameters against the table.

    Args:
        action: The action name, e.g. ``"msg/sendMsg"``.
        form: The form fields.
        files: The multipart file parts.
        now: The emulator's wall clock, seconds (for rules about "today").

    Returns:
        The ``desc`` of the first broken rule, naming the parameter; ``None`` if all hold.
    """
    problem = _one_spelling(action, form)
    if problem is not None:
        return problem
    for row in RULES.get(action, ()):
        problem = _row_problem(row, form, files)
        if problem is not None:
            return problem
    return _first(rule(form, now) for rule in CROSS_RULES.get(action, ()))


def _first(problems: Iterable[str | None]) -> str | None:
    return next((p for p in problems if p is not None), None)
