"""The nim-async command: send, attach, demo, and the emulator on a port.

Exit statuses: 0 done, 1 the server or the network refused (batch: any chunk
failed), 2 the user's own input (argument, setting, credential, file); every
failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import io
import json
import re
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


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Return (stdout, the stderr line), asserting stderr is one line and no traceback."""
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert err.startswith("nim-async: ")
    return out, err.rstrip("\n")


def _write_accids(path: Path, count: int) -> str:
    path.write_text("".join(f"user{n}\n" for n in range(count)))
    return str(path)


_BATCH_FAILED = re.compile(
    r"nim-async: (\d+) chunks failed \((\d+) recipients\); first error: (\w+): (.+)"
)


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
    _, line = _one_error_line(capsys)
    assert line == "nim-async: PermissionDenied: msg/sendMsg: code 403: no permission"


def test_missing_credentials_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without NIM_APP_KEY the command says which variable to set, and exits 2."""
    monkeypatch.delenv("NIM_APP_KEY", raising=False)
    monkeypatch.setenv("NIM_APP_SECRET", APP_SECRET)
    with pytest.raises(SystemExit) as exited:
        main(["send", "alice", "bob", "hello"])
    assert exited.value.code == 2
    assert _one_error_line(capsys)[1] == "nim-async: set NIM_APP_KEY in the environment"


def test_a_bad_base_url_is_a_configuration_error_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ConfigurationError is the user's setting: one line, exit 2."""
    monkeypatch.setenv("NIM_APP_KEY", APP_KEY)
    monkeypatch.setenv("NIM_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("NIM_BASE_URL", "ftp://x")
    with pytest.raises(SystemExit) as exited:
        main(["send", "alice", "bob", "hello"])
    assert exited.value.code == 2
    assert _one_error_line(capsys)[1].startswith("nim-async: ConfigurationError: base_url")


@pytest.mark.usefixtures("served_env")
def test_a_bad_argument_exits_2_before_anything_is_sent(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse's usage error: usage and one error line on stderr, exit 2, no call."""
    with pytest.raises(SystemExit) as exited:
        main(["broadcast", "hi", "--ttl-hours", "twelve"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].endswith("argument --ttl-hours: invalid int value: 'twelve'")
    assert emulator.calls == []


def test_help_lists_every_command_and_the_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--help` names every command and what each exit status means."""
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("send", "attach", "emulator", "broadcast", "recall", "upload", "batch"):
        assert command in out
    assert "demo" in out
    for status in ("0 ", "1 ", "2 ", "130 "):
        assert f"\n  {status}" in out


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
    with pytest.raises(SystemExit):
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


@pytest.mark.usefixtures("served_env")
def test_batch_all_accepted_exits_0(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Every chunk accepted: the summary on stdout, nothing on stderr, status 0."""
    main(["batch", "alice", "hello", "--to", _write_accids(tmp_path / "to.txt", 1200)])
    out, err = capsys.readouterr()
    assert json.loads(out)["accepted"] == 1200
    assert err == ""


def test_batch_with_unregistered_recipients_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Recipients the server does not know are an answer, not a failure: status 0."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, accounts=["alice", "user0"])
    with emulator.serve() as base_url:
        monkeypatch.setenv("NIM_APP_KEY", APP_KEY)
        monkeypatch.setenv("NIM_APP_SECRET", APP_SECRET)
        monkeypatch.setenv("NIM_BASE_URL", base_url)
        main(["batch", "alice", "hello", "--to", _write_accids(tmp_path / "to.txt", 3)])
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "accepted": 1,
        "unregistered": 2,
        "failed_chunks": 0,
        "surely_unsent": 0,
        "maybe_sent": 0,
        "calls": 1,
    }
    assert err == ""


@pytest.mark.usefixtures("served_env")
def test_batch_with_a_wrong_secret_exits_1_naming_parameter_error(
    emulator: NimEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Issue 9: every call refused with 414 is not success; one line names the error."""
    monkeypatch.setenv("NIM_APP_SECRET", "wrong-secret")
    with pytest.raises(SystemExit) as exited:
        main(["batch", "alice", "hello", "--to", _write_accids(tmp_path / "to.txt", 1200)])
    assert exited.value.code == 1
    out, line = _one_error_line(capsys)
    summary = json.loads(out)
    assert summary["accepted"] == 0
    assert emulator.messages == []
    assert {call.code for call in emulator.calls} == {414}
    match = _BATCH_FAILED.fullmatch(line)
    assert match is not None, line
    chunks, recipients, error, message = match.groups()
    # However soon the job stops, the line counts what the summary counts.
    failed = summary["surely_unsent"] + summary["maybe_sent"]
    assert (int(chunks), int(recipients)) == (summary["failed_chunks"], failed)
    assert error == "ParameterError"
    assert message.startswith("msg/sendBatchMsg: code 414")
    assert "wrong-secret" not in line


@pytest.mark.usefixtures("served_env")
@pytest.mark.parametrize(
    ("after", "error", "surely_unsent", "maybe_sent"),
    [(False, "ParameterError", 500, 0), (True, "ServerError", 0, 500)],
    ids=["surely-unsent", "maybe-sent"],
)
def test_batch_with_some_failed_chunks_exits_1(
    emulator: NimEmulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    after: bool,
    error: str,
    surely_unsent: int,
    maybe_sent: int,
) -> None:
    """One failed chunk of three, whether surely unsent or maybe sent, is status 1."""
    emulator.fail_every("msg/sendBatchMsg", 2, 500 if after else 414, after=after)
    with pytest.raises(SystemExit) as exited:
        main(["batch", "alice", "hello", "--to", _write_accids(tmp_path / "to.txt", 1500)])
    assert exited.value.code == 1
    out, line = _one_error_line(capsys)
    summary = json.loads(out)
    assert (summary["accepted"], summary["failed_chunks"]) == (1000, 1)
    assert (summary["surely_unsent"], summary["maybe_sent"]) == (surely_unsent, maybe_sent)
    assert line.startswith(f"nim-async: 1 chunks failed (500 recipients); first error: {error}: ")


@pytest.mark.usefixtures("served_env")
def test_batch_from_a_missing_file_exits_2_before_anything_is_sent(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file that cannot be opened is one line and status 2; no call is made."""
    missing = tmp_path / "missing.txt"
    with pytest.raises(SystemExit) as exited:
        main(["batch", "alice", "hello", "--to", str(missing)])
    assert exited.value.code == 2
    out, line = _one_error_line(capsys)
    assert line == f"nim-async: cannot read {missing}: No such file or directory"
    assert (out, emulator.calls) == ("", [])


@pytest.mark.usefixtures("served_env")
def test_batch_from_a_file_that_is_not_text_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Input that fails to decode while the job reads it is one line, status 2."""
    binary = tmp_path / "accids.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage\n" * 10)
    with pytest.raises(SystemExit) as exited:
        main(["batch", "alice", "hello", "--to", str(binary)])
    assert exited.value.code == 2
    assert _one_error_line(capsys)[1] == f"nim-async: cannot read {binary}: not UTF-8 text"


@pytest.mark.usefixtures("served_env")
def test_upload_of_a_missing_file_exits_2_before_anything_is_sent(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`nim-async upload` of a file that cannot be read: one line, status 2, no call."""
    missing = tmp_path / "missing.png"
    with pytest.raises(SystemExit) as exited:
        main(["upload", str(missing), "--type", "image/png"])
    assert exited.value.code == 2
    out, line = _one_error_line(capsys)
    assert line == f"nim-async: cannot read {missing}: No such file or directory"
    assert (out, emulator.calls) == ("", [])


_MAIN = "from nim_async._cli import main; main()"


def test_the_command_prints_no_traceback_for_a_missing_file(tmp_path: Path) -> None:
    """In a real process too: a missing input file is one stderr line and status 2."""
    missing = tmp_path / "missing.txt"
    finished = subprocess.run(
        [sys.executable, "-c", _MAIN, "batch", "alice", "hello", "--to", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"NIM_APP_KEY": APP_KEY, "NIM_APP_SECRET": APP_SECRET, "PATH": ""},
    )
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr == f"nim-async: cannot read {missing}: No such file or directory\n"
