"""Uploads, NOS clean-up, recall, broadcast, one-way delete and roam-session delete."""

from __future__ import annotations

import base64
import datetime as dt
import io
import pathlib
from typing import Any

import httpx
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import past_nos_range

pytestmark = pytest.mark.anyio

CONTENT = bytes(range(256)) * 1200  # 300 KB: several of httpx's 64 KB multipart chunks


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


async def _download(emulator: NimEmulator, url: str) -> bytes:
    async with httpx.AsyncClient(transport=emulator.transport()) as http:
        response = await http.get(url)
    response.raise_for_status()
    return response.content


class _RecordingFile(io.BytesIO):
    """A binary file that remembers the size of every read."""

    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.reads: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(size)
        return super().read(size)


class _Pipe(io.BytesIO):
    """A binary stream that cannot be rewound, like a pipe or a socket."""

    def seekable(self) -> bool:
        return False

    def seek(self, *args: Any) -> int:
        raise io.UnsupportedOperation("not seekable")

    def tell(self) -> int:
        raise io.UnsupportedOperation("not seekable")


async def test_upload_sends_base64_that_decodes_to_the_bytes_served_at_the_url(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """The content field is base64 of the bytes; the returned URL serves those bytes."""
    url = await client.upload(CONTENT)
    (call,) = emulator.calls
    assert base64.b64decode(call.form["content"]) == CONTENT
    assert url.startswith("http://")
    assert await _download(emulator, url) == CONTENT


async def test_upload_keywords_reach_the_server_under_their_nim_names(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """type, ishttps, expireSec and tag, booleans as true/false."""
    await client.upload(b"x", type="image/png", https=False, expire_sec=86400, tag="icon")
    (call,) = emulator.calls
    assert call.form == {
        "content": "eA==",
        "type": "image/png",
        "ishttps": "false",
        "expireSec": "86400",
        "tag": "icon",
    }


@pytest.mark.parametrize("action", ["msg/upload", "msg/fileUpload"])
async def test_https_true_gives_an_https_url(
    client: nim.NimClient, emulator: NimEmulator, action: str
) -> None:
    """https=True sends ishttps=true and gets an https URL that still serves the file."""
    upload = client.upload if action == "msg/upload" else client.file_upload
    url = await upload(b"secure", https=True)
    assert emulator.calls[0].form["ishttps"] == "true"
    assert url.startswith("https://")
    assert await _download(emulator, url) == b"secure"


async def test_file_upload_sends_bytes_as_a_multipart_part_with_its_fields(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """The content is a multipart file part; the keywords are the text parts."""
    url = await client.file_upload(CONTENT, type="bin", expire_sec=90000, tag="docs")
    (call,) = emulator.calls
    assert call.headers["content-type"].startswith("multipart/form-data")
    assert call.files == {"content": CONTENT}
    assert call.form == {"type": "bin", "expireSec": "90000", "tag": "docs"}
    assert await _download(emulator, url) == CONTENT


@pytest.mark.parametrize("as_str", [False, True], ids=["pathlib", "str"])
async def test_file_upload_reads_a_path(
    client: nim.NimClient, emulator: NimEmulator, tmp_path: pathlib.Path, as_str: bool
) -> None:
    """A path (pathlib or str) is opened and sent whole."""
    path = tmp_path / "report.pdf"
    path.write_bytes(CONTENT)
    url = await client.file_upload(str(path) if as_str else path)
    assert emulator.calls[0].files["content"] == CONTENT
    assert await _download(emulator, url) == CONTENT


async def test_file_upload_streams_an_open_binary_file_and_leaves_it_open(
    client: nim.NimClient, emulator: NimEmulator, tmp_path: pathlib.Path
) -> None:
    """An open file arrives intact; it stays open, because it is the caller's."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(CONTENT)
    with path.open("rb") as file:
        url = await client.file_upload(file)
        assert not file.closed
    assert emulator.calls[0].files["content"] == CONTENT
    assert await _download(emulator, url) == CONTENT


async def test_file_upload_reads_a_file_object_in_bounded_chunks(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """The file is streamed: no read asks for the whole of it at once."""
    file = _RecordingFile(CONTENT)
    await client.file_upload(file)
    assert emulator.calls[0].files["content"] == CONTENT
    assert file.reads
    assert all(size is not None and 0 < size < len(CONTENT) for size in file.reads)


async def test_a_failed_file_upload_is_retried_with_the_whole_file_again(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Uploads are idempotent: after a 500 the seekable file is rewound and sent in full again."""
    emulator.fail_next("msg/fileUpload", 500)
    url = await client.file_upload(io.BytesIO(CONTENT))
    first, second = emulator.calls
    assert (first.code, second.code) == (500, 200)
    assert first.files["content"] == second.files["content"] == CONTENT
    assert await _download(emulator, url) == CONTENT


async def test_a_stream_that_cannot_be_rewound_is_not_retried(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A pipe is spent by the first attempt: its failure is raised, not retried half-empty."""
    emulator.fail_next("msg/fileUpload", 500)
    with pytest.raises(nim.ServerError):
        await client.file_upload(_Pipe(CONTENT))
    (call,) = emulator.calls
    assert call.files["content"] == CONTENT


async def test_a_file_object_is_uploaded_from_its_current_position(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A seekable file is sent from where it stands, on every attempt, and stays open."""
    file = io.BytesIO(b"HEADER" + CONTENT)
    file.seek(6)
    emulator.fail_next("msg/fileUpload", 500)
    await client.file_upload(file)
    assert [call.files["content"] for call in emulator.calls] == [CONTENT, CONTENT]
    assert not file.closed


@pytest.mark.parametrize("as_ms", [False, True], ids=["aware-datetimes", "epoch-ms"])
async def test_clean_nos_files_sends_milliseconds_and_answers_the_task_id(
    client: nim.NimClient, emulator: NimEmulator, as_ms: bool
) -> None:
    """Aware datetimes become epoch ms, ints are sent as they are; the result is the task id."""
    start, end = past_nos_range()
    bounds: tuple[Any, Any] = (_ms(start), _ms(end)) if as_ms else (start, end)
    taskid = await client.clean_nos_files(*bounds, content_type="image", tag="usericon")
    (call,) = emulator.calls
    assert call.form == {
        "startTime": str(_ms(start)),
        "endTime": str(_ms(end)),
        "contentType": "image",
        "tag": "usericon",
    }
    (task,) = emulator.nos_tasks
    assert taskid == task.taskid
    assert (task.start_time, task.end_time) == (_ms(start), _ms(end))


@pytest.mark.parametrize(("team", "to", "code"), [(False, "bob", "7"), (True, "team-1", "8")])
async def test_recall_marks_a_sent_message_recalled(
    client: nim.NimClient, emulator: NimEmulator, team: bool, to: str, code: str
) -> None:
    """Recalling what send_msg returned: type 7 one-to-one, 8 for a team."""
    sent = await client.send_msg("alice", to, nim.Text("oops"), team=team)
    assert await client.recall(sent.msgid, sent.timetag, from_="alice", to=to, team=team) is None
    recall_call = emulator.calls[-1]
    assert recall_call.form == {
        "deleteMsgid": str(sent.msgid),
        "timetag": str(sent.timetag),
        "type": code,
        "from": "alice",
        "to": to,
    }
    assert emulator.messages[0].recalled


async def test_every_recall_keyword_reaches_the_server_under_its_nim_name(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """msg, ignoreTime=1, pushcontent, payload, env and attach."""
    sent = await client.send_msg("alice", "bob", nim.Text("oops"))
    await client.recall(
        sent.msgid,
        sent.timetag,
        from_="alice",
        to="bob",
        msg="这是一条撤回消息",
        ignore_time=True,
        push=nim.Push("recalled", {"k": 1}),
        env="prod",
        attach={"why": "typo"},
    )
    form = emulator.calls[-1].form
    assert {name: form[name] for name in form if name not in {"deleteMsgid", "timetag"}} == {
        "type": "7",
        "from": "alice",
        "to": "bob",
        "msg": "这是一条撤回消息",
        "ignoreTime": "1",
        "pushcontent": "recalled",
        "payload": '{"k":1}',
        "env": "prod",
        "attach": '{"why":"typo"}',
    }


async def test_recall_after_the_two_minute_window_raises_recall_expired(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Past the window the server answers 508, not retried; the message stays."""
    sent = await client.send_msg("alice", "bob", nim.Text("old"))
    emulator.advance(121)
    with pytest.raises(nim.RecallExpired) as caught:
        await client.recall(sent.msgid, sent.timetag, from_="alice", to="bob")
    assert (caught.value.code, caught.value.action) == (508, "msg/recall")
    assert [call.code for call in emulator.calls] == [200, 508]
    assert not emulator.messages[0].recalled


async def test_ignore_time_recalls_a_message_past_the_window(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """ignore_time=True (ignoreTime=1) skips the window check."""
    sent = await client.send_msg("alice", "bob", nim.Text("old"))
    emulator.advance(121)
    await client.recall(sent.msgid, sent.timetag, from_="alice", to="bob", ignore_time=True)
    assert emulator.messages[0].recalled


async def test_recalling_an_unknown_message_answers_fine(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """The server answers 200 for a msgid it does not know; so does the client."""
    await client.recall(987654321, 1_600_000_000_000, from_="alice", to="bob")
    assert emulator.calls[0].code == 200


async def test_broadcast_sends_every_keyword_and_returns_the_stored_broadcast(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """from, isOffline, ttl and targetOs on the wire; a Broadcast built from the answer."""
    result = await client.broadcast(
        "系统维护", from_="alice", offline=True, ttl_hours=24, target_os=["ios", "pc"]
    )
    assert emulator.calls[0].form == {
        "body": "系统维护",
        "from": "alice",
        "isOffline": "true",
        "ttl": "24",
        "targetOs": '["ios","pc"]',
    }
    (stored,) = emulator.broadcasts
    assert result == nim.Broadcast(
        broadcast_id=stored.broadcast_id,
        body="系统维护",
        create_time=stored.create_time,
        expire_time=stored.create_time + 24 * 3_600_000,
        is_offline=True,
        target_os=("ios", "pc"),
        from_="alice",
    )


async def test_a_bare_broadcast_sends_only_its_body_and_gets_the_defaults(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Unset keywords stay off the wire: not offline, all platforms, seven days."""
    result = await client.broadcast("abc")
    assert emulator.calls[0].form == {"body": "abc"}
    assert (result.body, result.is_offline, result.from_) == ("abc", False, None)
    assert result.target_os == ("ios", "aos", "pc", "web", "mac")
    assert result.expire_time == result.create_time + 7 * 24 * 3_600_000
    assert result.broadcast_id == emulator.broadcasts[0].broadcast_id


@pytest.mark.parametrize(("team", "to", "code"), [(False, "bob", "13"), (True, "team-1", "14")])
async def test_delete_msg_one_way_marks_the_message(
    client: nim.NimClient, emulator: NimEmulator, team: bool, to: str, code: str
) -> None:
    """Type 13 one-to-one, 14 for a team; the message is marked deleted for its receivers."""
    sent = await client.send_msg("alice", to, nim.Text("hi"), team=team)
    await client.delete_msg_one_way(
        sent.msgid, sent.timetag, from_="alice", to=to, team=team, msg="gone"
    )
    assert emulator.calls[-1].form == {
        "deleteMsgid": str(sent.msgid),
        "timetag": str(sent.timetag),
        "type": code,
        "from": "alice",
        "to": to,
        "msg": "gone",
    }
    (stored,) = emulator.messages
    assert (stored.deleted_one_way, stored.recalled) == (True, False)


@pytest.mark.parametrize(("team", "to", "code"), [(False, "bob", "1"), (True, "team-1", "2")])
async def test_delete_roam_session_is_recorded(
    client: nim.NimClient, emulator: NimEmulator, team: bool, to: str, code: str
) -> None:
    """Type 1 for a one-to-one session, 2 for a team session."""
    await client.delete_roam_session("alice", to, team=team)
    assert emulator.calls[0].form == {"type": code, "from": "alice", "to": to}
    (deletion,) = emulator.roam_deletions
    assert (deletion.from_, deletion.to, deletion.team) == ("alice", to, team)
