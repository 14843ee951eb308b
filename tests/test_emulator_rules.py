"""The emulator's parameter rules, from the seeds and the official SDKs: one row per broken rule.

Each row takes a valid call of an action, breaks one parameter, and expects
code 414 with a desc naming that parameter; the valid calls themselves answer 200.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from nim_async.testing import NimEmulator

from . import _raw as raw
from ._raw import KEY, SECRET, TEXT_BODY

pytestmark = pytest.mark.anyio

DAY_MS = 86_400_000
MISSING = object()


async def post(
    action: str, data: dict[str, str], files: dict[str, bytes] | None = None
) -> dict[str, object]:
    """The JSON answer of a fresh emulator to one signed call."""
    response = await raw.post(NimEmulator(KEY, SECRET), action, data, files=files)
    answer: dict[str, object] = response.json()
    return answer


def _yesterday_range(days: float = 1) -> tuple[int, int]:
    # seeds/003 job/nos/del: endTime before today (the service's day, UTC+8).
    now_ms = int(time.time() * 1000)
    offset = 8 * 3_600_000
    today = (now_ms + offset) // DAY_MS * DAY_MS - offset
    return today - 1 - int(days * DAY_MS), today - 1


START, END = _yesterday_range()
VALID: dict[str, dict[str, str]] = {
    "msg/sendMsg": {"from": "a", "ope": "0", "to": "b", "type": "0", "body": TEXT_BODY},
    "msg/sendBatchMsg": {"fromAccid": "a", "toAccids": '["b"]', "type": "0", "body": TEXT_BODY},
    "msg/sendAttachMsg": {"from": "a", "msgtype": "0", "to": "b", "attach": "{}"},
    "msg/sendBatchAttachMsg": {"fromAccid": "a", "toAccids": '["b"]', "attach": "{}"},
    "msg/upload": {"content": base64.b64encode(b"file").decode()},
    "job/nos/del": {"startTime": str(START), "endTime": str(END)},
    "msg/recall": {"deleteMsgid": "1", "timetag": "1", "type": "7", "from": "a", "to": "b"},
    "msg/broadcastMsg": {"body": "hello"},
    "msg/delMsgOneWay": {"deleteMsgid": "1", "timetag": "1", "type": "13", "from": "a", "to": "b"},
    "msg/delRoamSession": {"type": "1", "from": "a", "to": "b"},
    "msg/markReadMsg": {"from": "b", "to": "a", "msgidClient": "c1"},
    "msg/markReadTeamMsg": {"accid": "a", "tid": "1", "msgids": "[1]"},
    "msg/delMsg": {"deleteMsgid": "1", "timetag": "1", "type": "7", "from": "a", "to": "b"},
    "history/delBroadcastMsgById": {"broadcastId": "1"},
}

# Every optional parameter with a valid value: the emulator must not refuse these.
FULL: dict[str, dict[str, str]] = {
    "msg/sendMsg": {
        **VALID["msg/sendMsg"],
        "msgDesc": "d",
        "antispam": "false",
        "antispamCustom": '{"type":1,"data":"x"}',
        "option": json.dumps(dict.fromkeys(["roam", "history", "sendersync", "push"], True)),
        "pushcontent": "p" * 500,
        "payload": '{"k":1}',
        "ext": "e" * 1024,
        "forcepushlist": '["x","y"]',
        "forcepushcontent": "f",
        "forcepushall": "true",
        "bid": "b",
        "useYidun": "0",
        "yidunAntiCheating": "{}",
        "markRead": "1",
        "checkFriend": "false",
        "subType": "3",
        "msgSenderNoSense": "0",
        "msgReceiverNoSense": "1",
        "env": "prod",
        "yidunAntiSpamExt": json.dumps({"k": "v" * 1015}),  # 1024 characters
        "async": "true",
        "robotAccount": "r" * 100,
        "robotTopic": "t",
        "robotFunction": "f",
        "robotCustomContent": "c",
    },
    "msg/sendBatchMsg": {
        **VALID["msg/sendBatchMsg"],
        "option": '{"badge":false,"persistent":true,"sessionUpdate":false,"needPushNick":true}',
        "returnMsgid": "true",
        "msgDesc": "d",
        "ext": "e",
        "useYidun": "0",
        "msgSenderNoSense": "1",
        "yidunAntiSpamExt": "{}",
    },
    "msg/sendAttachMsg": {
        **VALID["msg/sendAttachMsg"],
        "pushcontent": "p",
        "payload": "{}",
        "sound": "s" * 30,
        "save": "2",
        "option": '{"badge":false,"needPushNick":false,"route":false}',
        "isForcePush": "true",
        "forcePushContent": "c",
        "forcePushAll": "false",
        "forcePushList": '["x"]',
        "env": "e",
        "checkAccidAsyncEnable": "false",
    },
    "msg/sendBatchAttachMsg": {
        **VALID["msg/sendBatchAttachMsg"],
        "attach": "a" * 4096,
        "save": "1",
        "isForcePush": "false",
        "checkAccidAsyncEnable": "true",
    },
    "msg/upload": {
        **VALID["msg/upload"],
        "type": "t" * 128,
        "ishttps": "true",
        "expireSec": "86400",
    },
    "job/nos/del": {**VALID["job/nos/del"], "contentType": "image", "tag": "t" * 32},
    "msg/recall": {
        **VALID["msg/recall"],
        "msg": "m" * 128,
        "ignoreTime": "1",
        "pushcontent": "p" * 600,  # seeds/003: past 500 characters it is truncated, not refused
        "payload": "{}",
        "env": "e",
        "attach": "a",
    },
    "msg/broadcastMsg": {
        "body": "b" * 4096,
        "from": "a",
        "isOffline": "true",
        "ttl": "24",
        "targetOs": '["ios","aos","pc","web","mac"]',
    },
    "msg/delMsgOneWay": {**VALID["msg/delMsgOneWay"], "type": "14", "msg": "m" * 128},
    "msg/delRoamSession": {"type": "3", "from": "a", "to": "t" * 32},
    "msg/markReadMsg": {"from": "b" * 32, "to": "a" * 32, "msgidClient": "c" * 200},
    "msg/markReadTeamMsg": {"accid": "a", "tid": "9" * 18, "msgids": f"[1, {2**63 - 1}]"},
    "msg/delMsg": {**VALID["msg/delMsg"], "type": "8", "to": "t" * 32},
    "history/delBroadcastMsgById": {"broadcastId": str(2**63 - 1)},
}


@pytest.mark.parametrize("action", sorted(VALID))
@pytest.mark.parametrize("table", [VALID, FULL], ids=["required", "everything"])
async def test_a_valid_call_is_accepted(action: str, table: dict[str, dict[str, str]]) -> None:
    """The minimal call and the call with every optional parameter both answer 200."""
    assert (await post(action, table[action]))["code"] == 200


def _accids(count: int) -> str:
    return json.dumps([f"u{i}" for i in range(count)])


BROKEN: list[tuple[str, str, object]] = [
    ("msg/sendMsg", "from", MISSING),
    ("msg/sendMsg", "from", ""),
    ("msg/sendMsg", "from", "a" * 33),
    ("msg/sendMsg", "ope", "2"),
    ("msg/sendMsg", "ope", "+1"),
    ("msg/sendMsg", "to", MISSING),
    ("msg/sendMsg", "to", "b" * 33),
    ("msg/sendMsg", "type", "5"),
    ("msg/sendMsg", "type", "text"),
    ("msg/sendMsg", "body", MISSING),
    ("msg/sendMsg", "body", "hello"),
    ("msg/sendMsg", "body", json.dumps({"msg": "x" * 5000})),
    ("msg/sendMsg", "body", '{"text":"hi"}'),  # type 0 needs {"msg": str}
    ("msg/sendMsg", "msgDesc", "d" * 501),
    ("msg/sendMsg", "antispam", "yes"),
    ("msg/sendMsg", "antispamCustom", '{"type":3,"data":"x"}'),
    ("msg/sendMsg", "option", '{"unknown":true}'),
    ("msg/sendMsg", "option", '{"push":"no"}'),
    ("msg/sendMsg", "option", "[]"),
    ("msg/sendMsg", "option", ""),
    ("msg/sendMsg", "pushcontent", "p" * 501),
    ("msg/sendMsg", "payload", "[1]"),
    ("msg/sendMsg", "payload", json.dumps({"k": "v" * 2040})),  # 2049 characters
    ("msg/sendMsg", "ext", "e" * 1025),
    ("msg/sendMsg", "forcepushlist", '["a",1]'),
    ("msg/sendMsg", "forcepushall", "1"),
    ("msg/sendMsg", "useYidun", "1"),
    ("msg/sendMsg", "yidunAntiCheating", "{"),
    ("msg/sendMsg", "markRead", "2"),
    ("msg/sendMsg", "checkFriend", "True"),
    ("msg/sendMsg", "subType", "0"),
    ("msg/sendMsg", "msgSenderNoSense", "2"),
    ("msg/sendMsg", "msgReceiverNoSense", "-1"),
    ("msg/sendMsg", "env", "e" * 33),
    ("msg/sendMsg", "yidunAntiSpamExt", "{"),
    ("msg/sendMsg", "yidunAntiSpamExt", json.dumps({"k": "v" * 1016})),  # 1025 characters
    ("msg/sendMsg", "async", "1"),
    ("msg/sendBatchMsg", "fromAccid", MISSING),
    ("msg/sendBatchMsg", "toAccids", MISSING),
    ("msg/sendBatchMsg", "toAccids", "[]"),
    ("msg/sendBatchMsg", "toAccids", "b"),
    ("msg/sendBatchMsg", "toAccids", _accids(501)),
    ("msg/sendBatchMsg", "toAccids", json.dumps(["x" * 33])),
    ("msg/sendBatchMsg", "type", MISSING),
    ("msg/sendBatchMsg", "body", MISSING),
    ("msg/sendBatchMsg", "returnMsgid", "yes"),
    ("msg/sendBatchMsg", "option", '{"badge":1}'),
    ("msg/sendBatchMsg", "msgSenderNoSense", "2"),
    ("msg/sendBatchMsg", "yidunAntiSpamExt", "x"),
    ("msg/sendAttachMsg", "msgtype", MISSING),
    ("msg/sendAttachMsg", "msgtype", "2"),
    ("msg/sendAttachMsg", "attach", MISSING),
    ("msg/sendAttachMsg", "attach", "a" * 4097),
    ("msg/sendAttachMsg", "sound", "s" * 31),
    ("msg/sendAttachMsg", "save", "3"),
    ("msg/sendAttachMsg", "option", '{"roam":true}'),  # only badge, needPushNick, route
    ("msg/sendAttachMsg", "isForcePush", "1"),
    ("msg/sendAttachMsg", "forcePushContent", "c" * 501),
    ("msg/sendAttachMsg", "forcePushAll", "no"),
    ("msg/sendAttachMsg", "forcePushList", _accids(101)),
    ("msg/sendAttachMsg", "payload", "{"),
    ("msg/sendAttachMsg", "env", "e" * 33),
    ("msg/sendAttachMsg", "checkAccidAsyncEnable", "1"),
    ("msg/sendBatchAttachMsg", "toAccids", _accids(5001)),
    ("msg/sendBatchAttachMsg", "checkAccidAsyncEnable", "yes"),
    ("msg/sendBatchAttachMsg", "attach", MISSING),
    ("msg/sendBatchAttachMsg", "save", "0"),
    ("msg/sendBatchAttachMsg", "forcePushContent", "c" * 501),
    ("msg/upload", "content", MISSING),
    ("msg/upload", "content", "not base64!"),
    ("msg/upload", "expireSec", "86399"),
    ("msg/upload", "ishttps", "1"),
    ("msg/upload", "tag", "t" * 33),
    ("msg/upload", "type", "t" * 129),
    ("job/nos/del", "startTime", MISSING),
    ("job/nos/del", "endTime", "yesterday"),
    ("job/nos/del", "startTime", "0"),
    ("job/nos/del", "startTime", str(END)),  # not less than endTime
    ("job/nos/del", "startTime", str(END - DAY_MS + 1)),  # less than a day
    ("job/nos/del", "startTime", str(END - 7 * DAY_MS - 1)),  # more than seven days
    ("job/nos/del", "endTime", str(int(time.time() * 1000))),  # not before today
    ("job/nos/del", "tag", "t" * 33),
    ("msg/recall", "deleteMsgid", MISSING),
    ("msg/recall", "deleteMsgid", "abc"),
    ("msg/recall", "timetag", MISSING),
    ("msg/recall", "type", "9"),
    ("msg/recall", "from", "f" * 33),
    ("msg/recall", "to", MISSING),
    ("msg/recall", "ignoreTime", "0"),
    ("msg/recall", "ignoreTime", "true"),
    ("msg/recall", "msg", "m" * 129),
    ("msg/recall", "payload", "x"),
    ("msg/recall", "attach", "a" * 5001),
    ("msg/broadcastMsg", "body", MISSING),
    ("msg/broadcastMsg", "body", "b" * 4097),
    ("msg/broadcastMsg", "from", "a" * 33),
    ("msg/broadcastMsg", "isOffline", "1"),
    ("msg/broadcastMsg", "ttl", "0"),
    ("msg/broadcastMsg", "targetOs", '["ios","linux"]'),
    ("msg/broadcastMsg", "targetOs", "[]"),
    ("msg/delMsgOneWay", "type", "7"),
    ("msg/delMsgOneWay", "deleteMsgid", MISSING),
    ("msg/delMsgOneWay", "from", MISSING),
    ("msg/delMsgOneWay", "msg", "m" * 129),
    ("msg/delRoamSession", "type", "4"),
    ("msg/delRoamSession", "type", "0"),
    ("msg/delRoamSession", "to", MISSING),
    ("msg/delRoamSession", "from", "f" * 33),
    ("msg/markReadMsg", "from", MISSING),
    ("msg/markReadMsg", "from", "f" * 33),
    ("msg/markReadMsg", "to", MISSING),
    ("msg/markReadMsg", "to", "t" * 33),
    ("msg/markReadMsg", "msgidClient", MISSING),
    ("msg/markReadMsg", "msgidClient", ""),
    ("msg/markReadTeamMsg", "accid", MISSING),
    ("msg/markReadTeamMsg", "accid", "a" * 33),
    ("msg/markReadTeamMsg", "tid", MISSING),
    ("msg/markReadTeamMsg", "tid", "team"),
    ("msg/markReadTeamMsg", "msgids", MISSING),
    ("msg/markReadTeamMsg", "msgids", "[]"),
    ("msg/markReadTeamMsg", "msgids", "1"),
    ("msg/markReadTeamMsg", "msgids", '["1"]'),
    ("msg/markReadTeamMsg", "msgids", "[true]"),
    ("msg/markReadTeamMsg", "msgids", "[1.5]"),
    ("msg/markReadTeamMsg", "msgids", f"[{2**63}]"),
    ("msg/delMsg", "deleteMsgid", MISSING),
    ("msg/delMsg", "deleteMsgid", "x"),
    ("msg/delMsg", "timetag", MISSING),
    ("msg/delMsg", "type", MISSING),
    ("msg/delMsg", "type", "13"),
    ("msg/delMsg", "from", MISSING),
    ("msg/delMsg", "to", "t" * 33),
    ("history/delBroadcastMsgById", "broadcastId", MISSING),
    ("history/delBroadcastMsgById", "broadcastId", "abc"),
]


@pytest.mark.parametrize(
    ("action", "param", "value"),
    BROKEN,
    ids=[f"{a}-{p}-{i}" for i, (a, p, _) in enumerate(BROKEN)],
)
async def test_a_broken_rule_answers_414_naming_the_parameter(
    action: str, param: str, value: object
) -> None:
    """Each seed rule, broken alone, answers code 414 with the parameter in the desc."""
    data = dict(VALID[action])
    if value is MISSING:
        del data[param]
    else:
        assert isinstance(value, str)
        data[param] = value
    answer = await post(action, data)
    assert answer["code"] == 414
    assert param in str(answer["desc"])


def _payload(chars: int) -> str:
    text = json.dumps({"k": "v" * (chars - 9)})
    assert len(text) == chars
    return text


PAYLOAD_ACTIONS = ["msg/sendMsg", "msg/sendBatchMsg", "msg/sendAttachMsg", "msg/sendBatchAttachMsg"]


@pytest.mark.parametrize("action", [*PAYLOAD_ACTIONS, "msg/recall"])
async def test_payload_takes_at_most_2048_characters(action: str) -> None:
    """Java SDK SendMessageRequestV1 and its kin: payload "不能超过 2048 字符", 2048 included."""
    assert (await post(action, VALID[action] | {"payload": _payload(2048)}))["code"] == 200
    answer = await post(action, VALID[action] | {"payload": _payload(2049)})
    assert answer["code"] == 414
    assert "payload" in str(answer["desc"])


async def test_return_msgid_allows_at_most_100_recipients() -> None:
    """seeds/003 sendBatchMsg: with returnMsgid=true, toAccids takes at most 100."""
    data = VALID["msg/sendBatchMsg"] | {"returnMsgid": "true"}
    assert (await post("msg/sendBatchMsg", data | {"toAccids": _accids(100)}))["code"] == 200
    answer = await post("msg/sendBatchMsg", data | {"toAccids": _accids(101)})
    assert answer["code"] == 414
    assert "toAccids" in str(answer["desc"])


async def test_500_recipients_are_accepted_by_send_batch_msg() -> None:
    """seeds/003 sendBatchMsg: "限500人" is inclusive."""
    data = VALID["msg/sendBatchMsg"] | {"toAccids": _accids(500)}
    assert (await post("msg/sendBatchMsg", data))["code"] == 200


async def test_send_batch_attach_msg_takes_5000_recipients() -> None:
    """Java SDK SendBatchAttachMsgRequestV1: toAccids "最多 5000 人" (seeds/000: 5,000)."""
    data = VALID["msg/sendBatchAttachMsg"] | {"toAccids": _accids(5000)}
    assert (await post("msg/sendBatchAttachMsg", data))["code"] == 200


@pytest.mark.parametrize("kind", [1, 2, 3, 4, 6])
async def test_file_like_bodies_must_be_json_objects(kind: int) -> None:
    """seeds/003 message formats: image, voice, video, location and file bodies are objects."""
    data = VALID["msg/sendMsg"] | {"type": str(kind)}
    assert (await post("msg/sendMsg", data | {"body": '{"url":"u"}'}))["code"] == 200
    assert (await post("msg/sendMsg", data | {"body": '["u"]'}))["code"] == 414


async def test_a_custom_body_may_be_any_json() -> None:
    """seeds/003 type 100: the third party's own JSON."""
    data = VALID["msg/sendMsg"] | {"type": "100", "body": "[1, 2]"}
    assert (await post("msg/sendMsg", data))["code"] == 200


async def test_an_upload_over_15_mb_is_refused() -> None:
    """seeds/003 upload: "最大15M" of decoded bytes."""
    limit = 15 * 1024 * 1024
    encoded = base64.b64encode(bytes(limit + 1)).decode()
    answer = await post("msg/upload", {"content": encoded})
    assert answer["code"] == 414
    assert "content" in str(answer["desc"])


async def test_a_file_upload_over_15_mb_is_refused() -> None:
    """seeds/003 fileUpload: "最大15M" for the multipart part too; 15 MB itself is fine."""
    limit = 15 * 1024 * 1024
    assert (await post("msg/fileUpload", {}, {"content": bytes(limit)}))["code"] == 200
    answer = await post("msg/fileUpload", {}, {"content": bytes(limit + 1)})
    assert answer["code"] == 414
    assert "content" in str(answer["desc"])


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({}, "content"),
        ({"expireSec": "100"}, "expireSec"),
        ({"ishttps": "yes"}, "ishttps"),
        ({"type": "t" * 129}, "type"),
    ],
)
async def test_file_upload_fields_follow_the_upload_rules(data: dict[str, str], param: str) -> None:
    """msg/fileUpload's text fields have msg/upload's rules (type: Java SDK, at most 128)."""
    # Some file part keeps the body multipart when "content" is the one missing.
    files = {"other" if param == "content" else "content": b"x"}
    answer = await post("msg/fileUpload", {"type": "text/plain"} | data, files)
    assert answer["code"] == 414
    assert param in str(answer["desc"])
