"""Every keyword refuses a value of the wrong type with InvalidRequest, before the wire."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

pytestmark = pytest.mark.anyio

REQUIRED: dict[str, dict[str, Any]] = {
    "send_msg": {"from_": "alice", "to": "bob", "body": nim.Text("hi")},
    "send_attach_msg": {"from_": "alice", "to": "bob", "attach": "x"},
    "send_batch_msg": {"from_": "alice", "to": ["bob"], "body": nim.Text("hi")},
    "send_batch_attach_msg": {"from_": "alice", "to": ["bob"], "attach": "x"},
    "upload": {"content": b"x"},
    "file_upload": {"content": b"x"},
    "clean_nos_files": {"start": 1, "end": 2},
    "recall": {"msgid": 1, "timetag": 1, "from_": "alice", "to": "bob"},
    "broadcast": {"body": "hi"},
    "delete_msg_one_way": {"msgid": 1, "timetag": 1, "from_": "alice", "to": "bob"},
    "delete_roam_session": {"from_": "alice", "to": "bob"},
}

# (method, keyword, value, the NIM parameter the error names)
WRONG = [
    ("send_msg", "to", ["bob", "carol"], "to"),
    ("send_msg", "from_", None, "from"),
    ("send_msg", "to", 42, "to"),
    ("send_msg", "team", "false", "ope"),
    ("send_msg", "team", None, "ope"),
    ("send_msg", "body", {"msg": "hi"}, "body"),
    ("send_msg", "body", nim.Custom({"k": float("-inf")}), "body"),
    ("send_msg", "body", nim.Custom({"k": object()}), "body"),
    ("send_msg", "option", {"roam": False}, "option"),
    ("send_msg", "push", "push text", "pushcontent"),
    ("send_msg", "push", nim.Push(content=5), "pushcontent"),
    ("send_msg", "push", nim.Push(payload=["not", "a", "mapping"]), "payload"),
    ("send_msg", "antispam", "maybe", "antispam"),
    ("send_msg", "antispam_custom", "type=1", "antispamCustom"),
    ("send_msg", "ext", 3.5, "ext"),
    ("send_msg", "force_push_list", "bob", "forcepushlist"),
    ("send_msg", "force_push_list", [1, 2], "forcepushlist"),
    ("send_msg", "force_push_all", "", "forcepushall"),
    ("send_msg", "use_yidun", True, "useYidun"),
    ("send_msg", "mark_read", 1, "markRead"),
    ("send_msg", "sub_type", True, "subType"),
    ("send_msg", "sub_type", "3", "subType"),
    ("send_attach_msg", "attach", 12, "attach"),
    ("send_attach_msg", "offline", "yes", "save"),
    ("send_attach_msg", "force_push", 0, "isForcePush"),
    ("send_batch_msg", "to", "bob", "toAccids"),
    ("send_batch_msg", "to", 7, "toAccids"),
    ("send_batch_msg", "return_msgid", "true", "returnMsgid"),
    ("send_batch_attach_msg", "to", None, "toAccids"),
    ("upload", "content", "text, not bytes", "content"),
    ("upload", "expire_sec", 86400.0, "expireSec"),
    ("upload", "https", "true", "ishttps"),
    ("file_upload", "content", 3, "content"),
    ("file_upload", "content", io.StringIO("text mode"), "content"),
    ("clean_nos_files", "start", "2026-01-01", "startTime"),
    ("clean_nos_files", "end", dt.date(2026, 1, 1), "endTime"),
    ("recall", "msgid", "12a", "deleteMsgid"),
    ("recall", "msgid", False, "deleteMsgid"),
    ("recall", "timetag", 1.5, "timetag"),
    ("recall", "ignore_time", 1, "ignoreTime"),
    ("broadcast", "body", None, "body"),
    ("broadcast", "target_os", "ios", "targetOs"),
    ("broadcast", "ttl_hours", float("nan"), "ttl"),
    ("delete_msg_one_way", "team", "1", "type"),
    ("delete_roam_session", "to", b"bob", "to"),
]


@pytest.mark.parametrize(("method", "keyword", "value", "parameter"), WRONG)
async def test_a_value_of_the_wrong_type_is_refused_before_anything_is_sent(
    client: nim.NimClient,
    emulator: NimEmulator,
    method: str,
    keyword: str,
    value: Any,
    parameter: str,
) -> None:
    """InvalidRequest names the NIM parameter, what it accepts and what it got."""
    arguments = {**REQUIRED[method], keyword: value}
    with pytest.raises(nim.InvalidRequest) as caught:
        await getattr(client, method)(**arguments)
    assert caught.value.parameter == parameter
    assert "must be" in str(caught.value)
    assert caught.value.actual is not None
    assert emulator.calls == []
    assert client.limiter_stats() == {}


@pytest.mark.parametrize("method", ["send_msg", "send_attach_msg", "broadcast"])
async def test_a_lone_surrogate_is_refused_before_the_limiter(
    client: nim.NimClient, emulator: NimEmulator, method: str
) -> None:
    """Half an emoji cannot be encoded as UTF-8: refused before a slot is taken."""
    text_keyword = {"send_msg": "to", "send_attach_msg": "attach", "broadcast": "body"}[method]
    arguments = {**REQUIRED[method], text_keyword: "bo\ud83d"}
    with pytest.raises(nim.InvalidRequest, match="surrogate"):
        await getattr(client, method)(**arguments)
    assert emulator.calls == []
    assert client.limiter_stats() == {}


async def test_a_lone_surrogate_among_listed_recipients_is_refused_whole(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A list of recipients is checked whole, surrogates included."""
    with pytest.raises(nim.InvalidRequest, match="toAccids"):
        await client.send_batch_attach_msg("alice", ["bob", "car\udc00l"], "x")
    assert emulator.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (nim.Text(123), "Text.msg"),  # type: ignore[arg-type]
        (nim.Tip(None), "Tip.msg"),  # type: ignore[arg-type]
        (nim.Image("u", "m", "jpg", "640", 480, 1), "Image.w"),  # type: ignore[arg-type]
        (nim.Image("u", "m", "jpg", 640, 480, 1, name=5), "Image.name"),  # type: ignore[arg-type]
        (nim.Voice("u", "m", True, 1), "Voice.dur"),
        (nim.Location("t", float("nan"), 1.0), "Location.lng"),
        (nim.Location("t", 1.0, "30.1"), "Location.lat"),  # type: ignore[arg-type]
        (nim.File("u", "m", b"name", "ttf", 1), "File.name"),  # type: ignore[arg-type]
    ],
)
async def test_a_body_with_a_field_of_the_wrong_type_is_refused(
    client: nim.NimClient, emulator: NimEmulator, body: nim.Body, field: str
) -> None:
    """The body's class declares each field's type; a wrong one names the field."""
    with pytest.raises(nim.InvalidRequest, match=field.replace(".", r"\.")) as caught:
        await client.send_msg("alice", "bob", body)
    assert caught.value.parameter == "body"
    assert emulator.calls == []


async def test_a_message_option_with_a_non_bool_flag_is_refused(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """MessageOption(roam="no") would otherwise go out as a JSON string."""
    with pytest.raises(nim.InvalidRequest, match="roam"):
        await client.send_msg("alice", "bob", nim.Text("hi"), option=nim.MessageOption(roam="no"))  # type: ignore[arg-type]
    assert emulator.calls == []
