"""Client-side limits: one table of field rules, checked on the form as it goes on the wire.

A rule is a row: the NIM parameter, the limit in words, a check, and the
actions it applies to. Lengths count characters of the value as sent (NetEase's
消息功能 page: "最大长度5000字符"), so rules run on the encoded form, after serialization and
before the rate limiter, the signature or any byte on the wire.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

from . import _actions as act
from ._errors import InvalidRequest
from ._uploads import Upload

__all__ = [
    "MAX_UPLOAD_BYTES",
    "RefusedRecipients",
    "check_recipients",
    "split_recipients",
    "validate",
]

# A check gets the parameter's wire value (text; the file part for
# msg/fileUpload's content) and the whole form; it returns None when the value
# is fine, or what to report as the value's size ("got ...").
Check = Callable[[Any, Mapping[str, Any]], object]

MAX_UPLOAD_BYTES = 15 * 1024 * 1024  # seed, upload: "最大15M"
_DAY_MS = 24 * 60 * 60 * 1000
# The NIM service runs on China time; "today" in job/nos/del is a China day.
_CHINA = dt.timezone(dt.timedelta(hours=8))
_TARGET_OS = ("ios", "aos", "pc", "web", "mac")


@attrs.frozen
class _Rule:
    parameter: str
    limit: str
    check: Check
    actions: frozenset[str] | None = None  # None: every action that sends the parameter


def _max_chars(limit: int) -> Check:
    return lambda value, form: f"{len(value)} characters" if len(value) > limit else None


def _bad_accid(accid: object) -> bool:
    # seed: every accid "最大32字符"; an empty one names nobody.
    return not isinstance(accid, str) or not 0 < len(accid) <= 32


def _not_empty(value: str, form: Mapping[str, str]) -> object:
    return "an empty value" if value == "" else None


def _accid(value: str, form: Mapping[str, str]) -> object:
    return f"{len(value)} characters" if _bad_accid(value) else None


def _json(value: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(value)
    except ValueError:
        return False, None


def _json_object(max_chars: int | None = None) -> Check:
    def check(value: str, form: Mapping[str, str]) -> object:
        if max_chars is not None and len(value) > max_chars:
            return f"{len(value)} characters"
        ok, decoded = _json(value)
        return None if ok and isinstance(decoded, dict) else "not a JSON object"

    return check


def _json_text(max_chars: int) -> Check:
    def check(value: str, form: Mapping[str, str]) -> object:
        if len(value) > max_chars:
            return f"{len(value)} characters"
        return None if _json(value)[0] else "not JSON"

    return check


def _accid_array(max_items: int | None, *, min_items: int = 0) -> Check:
    def check(value: str, form: Mapping[str, str]) -> object:
        ok, decoded = _json(value)
        if not ok or not isinstance(decoded, list):
            return "not a JSON array"
        if max_items is not None and len(decoded) > max_items:
            return f"{len(decoded)} accids"
        if len(decoded) < min_items:
            return f"{len(decoded)} accids"
        if _all_plain_accids(decoded):
            return None
        return next((f"accid {accid!r}" for accid in decoded if _bad_accid(accid)), None)

    return check


def _all_plain_accids(accids: list[object]) -> bool:
    # The common case in one pass, with no call per accid: a million recipients
    # are a thousand chunks of this.
    return all(type(a) is str and 0 < len(a) <= 32 and a.isascii() for a in accids)


def _to_accids(value: str, form: Mapping[str, str]) -> object:
    # seed, sendBatchMsg returnMsgid: "toAccids包含的账号数量不可以超过100个"
    limit = 100 if form.get("returnMsgid") == "true" else 500
    return _accid_array(limit, min_items=1)(value, form)


# Java SDK SendBatchAttachMsgRequestV1: toAccids "最多 5000 人" (seed 000 says 5,000 once).
MAX_BATCH_ATTACH_RECIPIENTS = 5000


def _upload_size(value: str | Upload, form: Mapping[str, Any]) -> object:
    # base64 without line breaks: 3 bytes per 4 characters, less the padding.
    size = value.size if isinstance(value, Upload) else len(value) * 3 // 4 - value[-2:].count("=")
    return f"{size} bytes" if size is not None and size > MAX_UPLOAD_BYTES else None


def _one_of(*allowed: str) -> Check:
    return lambda value, form: None if value in allowed else repr(value)


def _int_at_least(minimum: int) -> Check:
    def check(value: str, form: Mapping[str, str]) -> object:
        try:
            return None if int(value) >= minimum else value
        except ValueError:
            return repr(value)

    return check


def _antispam_custom(value: str, form: Mapping[str, str]) -> object:
    # seed, sendMsg antispamCustom: {"type":1,"data":"custom content"}, type 1 text, 2 image
    if len(value) > 5000:
        return f"{len(value)} characters"
    ok, decoded = _json(value)
    if not ok or not isinstance(decoded, dict):
        return "not a JSON object"
    if decoded.get("type") not in (1, 2) or not isinstance(decoded.get("data"), str):
        return json.dumps(decoded, ensure_ascii=False)[:80]
    return None


def _target_os(value: str, form: Mapping[str, str]) -> object:
    ok, decoded = _json(value)
    if not ok or not isinstance(decoded, list) or not decoded:
        return "not a non-empty JSON array"
    unknown = [name for name in decoded if name not in _TARGET_OS]
    return f"{unknown}" if unknown else None


def _team_only(kind_parameter: str) -> Check:
    # seed: forcepushlist, forcepushall, markRead "发送群消息时 / 仅对群消息有效".
    return lambda value, form: None if form.get(kind_parameter) == "1" else "a one-to-one message"


def _option_keys(*allowed: str) -> Check:
    def check(value: str, form: Mapping[str, str]) -> object:
        ok, decoded = _json(value)
        if not ok or not isinstance(decoded, dict):
            return "not a JSON object"
        unknown = sorted(set(decoded) - set(allowed))
        return f"{unknown}" if unknown else None

    return check


def _start_of_china_today() -> int:
    now = dt.datetime.now(_CHINA)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


def _end_time(value: str, form: Mapping[str, str]) -> object:
    # seed, job/nos/del: startTime < endTime, both > 0, the span over 1 day and
    # within 7 days, and endTime before today.
    start, end = int(form["startTime"]), int(value)
    if not 0 < start < end:
        return f"startTime {start}, endTime {end}"
    if not _DAY_MS <= end - start <= 7 * _DAY_MS:
        return f"a span of {(end - start) / _DAY_MS:.3f} days"
    if end >= _start_of_china_today():
        return f"endTime {end}"
    return None


def _int_between(lowest: int, highest: int) -> Check:
    def check(value: str, form: Mapping[str, str]) -> object:
        return None if lowest <= int(value) <= highest else value

    return check


def _after_begintime(value: str, form: Mapping[str, str]) -> object:
    # Java SDK QuerySessionHistoryMessageRequestV1: "begintime 需要早于 endtime，
    # 否则会返回 {"desc": "bad time", "code": 414}".
    begin, end = int(form["begintime"]), int(value)
    return None if begin < end else f"begintime {begin}, endtime {end}"


# NetEase's doc page "查询单聊云端历史消息" (Java SDK QuerySessionHistoryMessageRequestV1,
# type): "0:文本，1:图片，2:语音，3:视频，4:地理位置，5:通知，6:文件，10:提示，
# 11:Robot，100:自定义".
_HISTORY_TYPES = ("0", "1", "2", "3", "4", "5", "6", "10", "11", "100")


def _history_types(value: str, form: Mapping[str, str]) -> object:
    unknown = [code for code in value.split(",") if code not in _HISTORY_TYPES]
    return ", ".join(unknown) if unknown else None


_SENDS = frozenset({act.SEND_MSG, act.SEND_BATCH_MSG})
_ATTACHES = frozenset({act.SEND_ATTACH_MSG, act.SEND_BATCH_ATTACH_MSG})
_UPLOADS = frozenset({act.UPLOAD, act.FILE_UPLOAD})
_NOT_RECALL = frozenset(act.ACTIONS - {act.RECALL})
_MESSAGE_AT = frozenset({act.RECALL, act.DEL_MSG_ONE_WAY})
_HISTORY = frozenset({act.QUERY_SESSION_MSG})

_RULES: tuple[_Rule, ...] = (
    # Accounts and team ids (seed: "最大32字符").
    _Rule("from", "an accid of 1 to 32 characters", _accid),
    _Rule("fromAccid", "an accid of 1 to 32 characters", _accid),
    _Rule("to", "an accid or team id of 1 to 32 characters", _accid),
    _Rule(
        "toAccids",
        "a JSON array of 1 to 500 accids of 1 to 32 characters (at most 100 with returnMsgid)",
        _to_accids,
        frozenset({act.SEND_BATCH_MSG}),
    ),
    _Rule(
        "toAccids",
        f"a JSON array of 1 to {MAX_BATCH_ATTACH_RECIPIENTS} accids of 1 to 32 characters",
        _accid_array(MAX_BATCH_ATTACH_RECIPIENTS, min_items=1),
        frozenset({act.SEND_BATCH_ATTACH_MSG}),
    ),
    # Message content.
    _Rule("body", "JSON of at most 5000 characters", _json_text(5000), _SENDS),
    _Rule("body", "at most 4096 characters", _max_chars(4096), frozenset({act.BROADCAST})),
    _Rule("msgDesc", "at most 500 characters", _max_chars(500)),
    # The server reads an empty required field as a missing one.
    _Rule("attach", "non-empty (it is required)", _not_empty, _ATTACHES),
    _Rule("body", "non-empty (it is required)", _not_empty, frozenset({act.BROADCAST})),
    _Rule("content", "non-empty (it is required)", _not_empty, frozenset({act.UPLOAD})),
    _Rule("attach", "at most 4096 characters", _max_chars(4096), _ATTACHES),
    _Rule("attach", "at most 5000 characters", _max_chars(5000), frozenset({act.RECALL})),
    # Java SDK RecallMessageRequestV1 and DeleteMessageOneWayRequestV1: "最大长度 128 个字符".
    _Rule("msg", "at most 128 characters", _max_chars(128), _MESSAGE_AT),
    _Rule("ext", "at most 1024 characters", _max_chars(1024)),
    _Rule("subType", "an integer greater than 0", _int_at_least(1)),
    _Rule("option", "a JSON object", _json_object()),
    # seed, sendAttachMsg option: only badge, needPushNick and route.
    _Rule(
        "option",
        "a MessageOption with only badge, need_push_nick and route set",
        _option_keys("badge", "needPushNick", "route"),
        _ATTACHES,
    ),
    _Rule(
        "antispamCustom",
        'a JSON object {"type": 1 or 2, "data": str} of at most 5000 characters',
        _antispam_custom,
    ),
    _Rule("yidunAntiCheating", "JSON of at most 1024 characters", _json_text(1024)),
    # Java SDK SendMessageRequestV1: yidunAntiSpamExt "长度限制 1024 字符".
    _Rule("yidunAntiSpamExt", "JSON of at most 1024 characters", _json_text(1024)),
    # Push (recall's pushcontent is truncated by the server past 500, not refused).
    _Rule("pushcontent", "at most 500 characters", _max_chars(500), _NOT_RECALL),
    # NetEase's older docs pages say 2000; the newer yunxin-server-sdk-java
    # (SendMessageRequestV1, RecallMessageRequestV1: "不能超过 2048 字符") says 2048.
    _Rule("payload", "a JSON object of at most 2048 characters", _json_object(2048)),
    _Rule("sound", "at most 30 characters", _max_chars(30)),
    _Rule("forcePushContent", "at most 500 characters", _max_chars(500)),
    _Rule("forcepushlist", "a JSON array of accids", _accid_array(None)),
    _Rule("forcePushList", "a JSON array of at most 100 accids", _accid_array(100)),
    _Rule("forcepushlist", "used only for team messages (team=True)", _team_only("ope")),
    _Rule("forcepushcontent", "used only for team messages (team=True)", _team_only("ope")),
    _Rule("forcepushall", "used only for team messages (team=True)", _team_only("ope")),
    _Rule("markRead", "used only for team messages (team=True)", _team_only("ope")),
    _Rule("forcePushList", "used only for team notifications (team=True)", _team_only("msgtype")),
    _Rule("forcePushAll", "used only for team notifications (team=True)", _team_only("msgtype")),
    # Flags.
    _Rule("save", "1 (online only) or 2 (kept offline)", _one_of("1", "2")),
    _Rule("markRead", "0 or 1", _one_of("0", "1")),
    _Rule("msgSenderNoSense", "0 or 1", _one_of("0", "1")),
    _Rule("msgReceiverNoSense", "0 or 1", _one_of("0", "1")),
    _Rule("ignoreTime", "1 (the only value the server takes)", _one_of("1")),
    _Rule("env", "at most 32 characters", _max_chars(32)),
    # Uploads and the NOS clean-up job.
    _Rule("content", f"at most {MAX_UPLOAD_BYTES} bytes (15 MB)", _upload_size, _UPLOADS),
    _Rule("expireSec", "at least 86400 seconds", _int_at_least(86400), _UPLOADS),
    _Rule("tag", "at most 32 characters", _max_chars(32)),
    # Java SDK UploadFileRequestV1: type "最多 128 字符，超限视为 null" (silently dropped).
    _Rule("type", "at most 128 characters", _max_chars(128), _UPLOADS),
    # Read receipts (Java SDK MarkReadMessageRequestV1, MarkReadTeamMessageRequestV1).
    _Rule("accid", "an accid of 1 to 32 characters", _accid),
    _Rule("msgidClient", "non-empty (it is required)", _not_empty),
    _Rule(
        "endTime",
        "after startTime > 0, 1 to 7 days after it, and before today (China time)",
        _end_time,
        frozenset({act.CLEAN_NOS}),
    ),
    # The one-to-one cloud history (Java SDK QuerySessionHistoryMessageRequestV1):
    # limit "最多 100 条，小于等于 0，或者大于 100，会提示参数错误".
    _Rule("limit", "an int from 1 to 100", _int_between(1, 100), _HISTORY),
    _Rule("endtime", "after begintime", _after_begintime, _HISTORY),
    _Rule(
        "type",
        f"message types among {', '.join(_HISTORY_TYPES)}",
        _history_types,
        _HISTORY,
    ),
    # Broadcasts.
    _Rule("targetOs", f"a non-empty subset of {list(_TARGET_OS)}", _target_os),
    _Rule("ttl", "a whole number of hours, at least 1", _int_at_least(1)),
)


_RULES_BY_ACTION = {
    action: tuple(rule for rule in _RULES if rule.actions is None or action in rule.actions)
    for action in act.ACTIONS
}


@functools.lru_cache(maxsize=1024)
def _rules_for(action: str, parameters: tuple[str, ...]) -> tuple[_Rule, ...]:
    # A call sends a handful of its action's parameters, the same handful each time.
    return tuple(rule for rule in _RULES_BY_ACTION[action] if rule.parameter in parameters)


def _check_utf8(parameter: str, value: str) -> None:
    # The form goes out as UTF-8: a lone surrogate (half an emoji) would fail
    # while encoding, after the rate-limit slot was taken.
    if value.isascii():
        return  # no copy of a 20 MB base64 upload just to look at it
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            parameter,
            "text that UTF-8 can encode (no lone surrogate)",
            f"{exc.object[exc.start]!r} at {exc.start}",
        ) from None


def validate(
    action: str, form: Mapping[str, str | Upload], *, only: Collection[str] | None = None
) -> None:
    """Check every rule of ``action`` that applies to a parameter present in ``form``.

    Args:
        action: The NIM action.
        form: The wire form.
        only: Check only these parameters (a batch chunk's ``toAccids``, once
            the job's other fields passed).

    Raises:
        InvalidRequest: The first broken rule, naming the parameter, the limit
            and the value's size.
    """
    for parameter, value in form.items():
        # ASCII (nearly every value) encodes: no call to look further.
        if isinstance(value, str) and not value.isascii() and (only is None or parameter in only):
            _check_utf8(parameter, value)
    parameters = tuple(form if only is None else (name for name in form if name in only))
    for rule in _rules_for(action, parameters):
        if (actual := rule.check(form[rule.parameter], form)) is not None:
            raise InvalidRequest(rule.parameter, rule.limit, actual)


def split_recipients(chunk: list[str], start: int) -> tuple[list[str], RefusedRecipients | None]:
    """Separate the recipients of a chunk read from a stream that break the accid rule.

    Args:
        chunk: The chunk, as read.
        start: The input position of its first recipient, for the error.

    Returns:
        The good recipients, and the refused ones with an ``InvalidRequest``
        naming their positions in the whole input (None if there are none).
    """
    if _all_plain_accids(chunk):  # type: ignore[arg-type]
        return chunk, None
    bad = [(start + offset, accid) for offset, accid in enumerate(chunk) if _refused(accid)]
    if not bad:
        return chunk, None
    refused_at = {position for position, _ in bad}
    good = [accid for offset, accid in enumerate(chunk) if start + offset not in refused_at]
    shown = ", ".join(f"{accid!r} at position {position}" for position, accid in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    error = InvalidRequest("toAccids", _ACCIDS_LIMIT, shown + more)
    return good, RefusedRecipients(tuple(accid for _, accid in bad), error)


@attrs.frozen
class RefusedRecipients:
    """Recipients of a chunk refused by the client, and why."""

    accids: tuple[str, ...]
    error: InvalidRequest


def _refused(accid: object) -> bool:
    if _bad_accid(accid):
        return True
    assert isinstance(accid, str)
    try:
        _check_utf8("toAccids", accid)
    except InvalidRequest:
        return True
    return False


_ACCIDS_LIMIT = "accids of 1 to 32 characters that UTF-8 can encode"


def check_recipients(recipients: Collection[object]) -> None:
    """Check a whole collection of recipients before the first chunk goes out.

    A bad accid at position 900,000 must not leave the job half done.

    Raises:
        InvalidRequest: The first bad accid, with its position.
    """
    for position, accid in enumerate(recipients):
        if _refused(accid):
            raise InvalidRequest("toAccids", _ACCIDS_LIMIT, f"{accid!r} at position {position}")
