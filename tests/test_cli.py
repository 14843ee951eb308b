"""The nim-async command: send, attach, demo, and the emulator on a port."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import nim_async as nim
from nim_async._cli import _ProgressBar, main
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, free_port, listens_soon


@pytest.fixture
def served_env(emulator: NimEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with emulator.serve() as base_url:
        monkeypatch.setenv("NIM_APP_KEY", APP_KEY)
        monkeypatch.setenv("NIM_APP_SECRET", APP_SECRET)
        monkeypatch.setenv("NIM_BASE_URL", base_url)
        yield


@pytest.mark.usefixtures("served_env")
def test_send_prints_the_message_id(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """`nim-async send` sends one text message and prints its id and timetag."""
    main(["send", "alice", "bob", "hello"])
    printed = json.loads(capsys.readouterr().out)
    (message,) = emulator.messages
    assert printed == {"msgid": message.msgid, "timetag": message.timetag}
    assert json.loads(emulator.calls[0].form["body"]) == {"msg": "hello"}


@pytest.mark.usefixtures("served_env")
def test_attach_sends_an_online_only_team_notification(emulator: NimEmulator) -> None:
    """`nim-async attach --team --online-only` is msgtype=1, save=1."""
    main(["attach", "alice", "team-1", '{"t":1}', "--team", "--online-only"])
    form = emulator.calls[0].form
    assert (form["msgtype"], form["save"], form["attach"]) == ("1", "1", '{"t":1}')


@pytest.mark.usefixtures("served_env")
def test_a_nim_error_exits_1_with_its_message(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Server errors become a one-line message on stderr, never a traceback."""
    emulator.fail_next("msg/sendMsg", 403, desc="no permission")
    with pytest.raises(SystemExit) as exited:
        main(["send", "alice", "bob", "hello"])
    assert exited.value.code == 1
    assert "PermissionDenied" in capsys.readouterr().err


def test_missing_credentials_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NIM_APP_KEY the command says which variable to set."""
    monkeypatch.delenv("NIM_APP_KEY", raising=False)
    with pytest.raises(SystemExit, match="NIM_APP_KEY"):
        main(["send", "alice", "bob", "hello"])


def test_demo_reports_no_block_and_everybody_notified_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo's burst and bulk job get no 416; refused chunks are resent, nobody twice."""
    main(["demo", "--messages", "150", "--recipients", "5000", "--scale", "0.05"])
    out = capsys.readouterr().out
    assert "0 blocked (416)" in out
    assert "bulk: 5,000 recipients" in out
    assert "resent 500 surely-unsent recipients: 500 accepted" in out
    assert "notified exactly once: 4,500 of 4,500; twice or more: 0" in out


@pytest.mark.usefixtures("served_env")
def test_batch_reads_accids_from_a_file_and_writes_the_unsent(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`nim-async batch` sends to every accid of the file; refused ones go to --failed-to."""
    accids = tmp_path / "accids.txt"
    accids.write_text("".join(f"user{n}\n" for n in range(1200)) + "\n")
    failed_to = tmp_path / "unsent.txt"
    emulator.fail_next("msg/sendBatchMsg", 414)
    main(["batch", "alice", "hello", "--to", str(accids), "--failed-to", str(failed_to)])
    summary = json.loads(capsys.readouterr().out)
    assert summary == {
        "accepted": 700,
        "unregistered": 0,
        "failed_chunks": 1,
        "surely_unsent": 500,
        "maybe_sent": 0,
        "calls": 3,
    }
    unsent = failed_to.read_text().split()
    assert len(unsent) == 500
    assert {m.to for m in emulator.messages}.isdisjoint(unsent)


@pytest.mark.usefixtures("served_env")
def test_batch_attach_reads_stdin(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--attach` sends a notification; `--to -` (the default) reads accids from stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO("bob\ncarol\n"))
    main(["batch", "alice", '{"ping":1}', "--attach"])
    assert json.loads(capsys.readouterr().out)["accepted"] == 2
    assert emulator.calls[0].form["toAccids"] == '["bob","carol"]'


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    """A bar with the total when known, a count when not; nothing when piped."""
    terminal = _Terminal()
    bar = _ProgressBar(terminal, width=10)
    bar(nim.Progress(done=500, total=1000, failed_chunks=1))
    bar(nim.Progress(done=1500, total=None, failed_chunks=0))
    bar.close()
    assert terminal.getvalue() == (
        "\r[#####.....] 500/1,000, 1 failed chunks\r1,500 recipients, 0 failed chunks\n"
    )
    piped = io.StringIO()
    silent = _ProgressBar(piped)
    silent(nim.Progress(done=1, total=2, failed_chunks=0))
    silent.close()
    assert piped.getvalue() == ""


def test_the_emulator_command_serves_on_a_port() -> None:
    """`nim-async emulator --port N` answers real clients until stopped."""
    port = free_port()
    command = "from nim_async._cli import _ProgressBar, main; main()"
    server = subprocess.Popen(
        [sys.executable, "-c", command, "emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listens_soon(port, seconds=20, interval=0.05), "the emulator did not start"

        async def send() -> nim.SendResult:
            async with nim.NimClient(
                "demo-app-key",
                "demo-app-secret",
                base_url=f"http://127.0.0.1:{port}/nimserver/",
                rate_limits=None,
            ) as client:
                return await client.send_msg("alice", "bob", nim.Text("over TCP"))

        assert anyio.run(send).msgid > 0
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/nimserver/" in out


@pytest.mark.usefixtures("served_env")
def test_broadcast_recall_and_upload_commands(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The remaining commands are thin: each sends its action with its options."""
    main(
        [
            "broadcast",
            "maintenance",
            "--from",
            "ops",
            "--offline",
            "--ttl-hours",
            "2",
            "--target-os",
            "ios,web",
        ]
    )
    assert json.loads(capsys.readouterr().out)["broadcast_id"] > 0
    form = emulator.calls[-1].form
    assert (form["from"], form["isOffline"], form["ttl"], form["targetOs"]) == (
        "ops",
        "true",
        "2",
        '["ios","web"]',
    )

    main(["send", "alice", "bob", "oops"])
    sent = json.loads(capsys.readouterr().out)
    main(["recall", str(sent["msgid"]), str(sent["timetag"]), "alice", "bob", "--msg", "sorry"])
    assert json.loads(capsys.readouterr().out) == {"ok": True}
    assert emulator.messages[-1].recalled

    file = tmp_path / "logo.png"
    file.write_bytes(b"\x89PNG fake")
    main(["upload", str(file), "--type", "image/png", "--tag", "logo", "--expire-sec", "86400"])
    url = json.loads(capsys.readouterr().out)["url"]
    assert url.startswith("http")
    (upload,) = emulator.uploads.values()
    assert (upload.content, upload.tag) == (b"\x89PNG fake", "logo")
