"""The nim-async command: send, attach, batch, demo and the others (emulator: its own module).

Exit statuses: 0 done, 1 the server or the network refused (batch: any chunk
failed), 2 the user's own input (argument, setting, credential, file); every
failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import nim_async as nim
from nim_async._cli import main
from nim_async._cli_progress import ProgressBar as _ProgressBar
from nim_async._cli_progress import estimate_line
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET


@pytest.fixture
def served_env(
    emulator: NimEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    # A limiter file of the test's own: no budget shared with another test.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
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


def _batch_error_line(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Return (stdout, the error line) of a batch that started: stderr is the
    estimate line, then one error line, and no traceback."""
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    estimate, line = err.splitlines()
    assert _ESTIMATE.fullmatch(estimate), estimate
    assert err.endswith("\n")
    return out, line


def _write_accids(path: Path, count: int) -> str:
    path.write_text("".join(f"user{n}\n" for n in range(count)))
    return str(path)


def _summary(**changes: object) -> dict[str, object]:
    """A batch summary: every recipient accepted in one call, but for ``changes``."""
    summary: dict[str, object] = {
        "accepted": 0,
        "unregistered": 0,
        "failed_chunks": 0,
        "surely_unsent": 0,
        "maybe_sent": 0,
        "unread": 0,
        "duplicates": 0,
        "calls": 1,
        "stopped": None,
        "resumed_chunks": 0,
    }
    assert changes.keys() <= summary.keys()
    return summary | changes


_ESTIMATE = re.compile(
    r"nim-async: (\S+ calls for \S+ recipients, at least .+ at the current budget.*"
    r"|the number of recipients is unknown \(stdin or a pipe\), so there is no estimate)"
)


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
    for status in ("0 ", "1 ", "2 ", "3 ", "130 "):
        assert f"\n  {status}" in out


def test_demo_kills_and_resumes_the_bulk_job_and_nobody_gets_it_twice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo's bulk job is killed part way and resumed from its journal: no 416,
    the refused chunks are sent on resume, the chunks in flight at the kill are
    settled with the service's history, and every recipient ends in its place."""
    main(["demo", "--messages", "150", "--recipients", "5000", "--scale", "0.05"])
    out = capsys.readouterr().out
    assert "bulk: 10 calls for 5,000 recipients" in out
    killed = re.search(r"killed after .* s: ([\d,]+) of 5,000 done, .* (\d+) chunks in flight", out)
    assert killed is not None, out
    assert 0 < int(killed[1].replace(",", "")) < 5000
    in_flight = int(killed[2])
    assert re.search(r"resumed in .* 0 failed; \d+ calls", out), out
    settled = re.search(r"about the (\d+) chunks .*: (\d+) had arrived, (\d+) had not", out)
    assert settled is not None, out
    # At least the chunks in flight at the kill; more when the journal's write of an
    # answer that did come was cut short (a loaded machine): the journal then still
    # says "sending", and the history settles those too.
    asked = int(settled[1])
    assert asked >= in_flight
    assert int(settled[2]) + int(settled[3]) == asked
    assert (
        "in the end: 4,500 accepted, 500 unregistered, 0 may have been sent, 0 failed, "
        "of 5,000; 0 answers 416 (blocked) in all"
    ) in out


def test_a_demo_with_more_messages_than_recipients_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The burst's messages go to an account of their own, whatever the recipient count."""
    main(["demo", "--messages", "50", "--recipients", "10", "--scale", "0.05"])
    out = capsys.readouterr().out
    assert "burst: 50 messages" in out
    assert "in the end: 9 accepted, 1 unregistered, 0 may have been sent, 0 failed, of 10" in out


@pytest.mark.usefixtures("served_env")
def test_batch_reads_accids_from_a_file_and_writes_the_unsent(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`nim-async batch` sends to every accid of the file; refused ones go to --failed-to."""
    accids = tmp_path / "accids.txt"
    accids.write_text("".join(f"user{n}\n" for n in range(1200)) + "\n")
    failed_to = tmp_path / "unsent.txt"
    # 419: a refusal of this chunk only (a 414 would stop the job, and with it the
    # chunks not yet on the wire, however many those are at that moment).
    emulator.fail_next("msg/sendBatchMsg", 419)
    with pytest.raises(SystemExit):
        main(["batch", "alice", "hello", "--to", str(accids), "--failed-to", str(failed_to)])
    summary = json.loads(capsys.readouterr().out)
    assert summary == _summary(accepted=700, failed_chunks=1, surely_unsent=500, calls=3)
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


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_progress_bar_draws_count_rate_and_eta_on_a_terminal() -> None:
    """On a terminal: the count, the share, the rate, the ETA and the failed chunks."""
    terminal = _Terminal()
    with _ProgressBar(terminal) as bar:
        bar(nim.Progress(done=0, total=1000, failed_chunks=0, eta=180.0))
        bar(nim.Progress(done=500, total=1000, failed_chunks=1, rate=250.0, eta=2.0))
    drawn = _ANSI.sub("", terminal.getvalue())
    assert "0/1,000" in drawn
    assert "eta 3 min 0 s" in drawn
    last = drawn.rsplit("\r", 1)[-1]
    for part in ("500/1,000", "50%", "250/s", "eta 2.0 s", "1 failed chunks"):
        assert part in last, drawn


def test_the_progress_bar_counts_without_a_total() -> None:
    """Recipients from stdin have no total: the bar counts them, with the rate."""
    terminal = _Terminal()
    with _ProgressBar(terminal) as bar:
        bar(nim.Progress(done=1500, total=None, failed_chunks=0, rate=1234.5))
    drawn = _ANSI.sub("", terminal.getvalue())
    assert "1,500 recipients" in drawn
    assert "1,234/s" in drawn or "1,235/s" in drawn
    assert "eta" not in drawn


def test_the_progress_bar_is_silent_when_not_on_a_terminal() -> None:
    """Piped or redirected, stderr gets no bar."""
    piped = io.StringIO()
    with _ProgressBar(piped) as bar:
        bar(nim.Progress(done=1, total=2, failed_chunks=0, rate=1.0, eta=1.0))
    assert piped.getvalue() == ""


@pytest.mark.parametrize(
    ("calls", "recipients", "seconds", "line"),
    [
        (400, 200_000, 180.0, "400 calls for 200,000 recipients, at least 3 min 0 s"),
        (3, 1200, 0.0, "3 calls for 1,200 recipients, at least 0.0 s"),
        (2000, 1_000_000, 7980.0, "2,000 calls for 1,000,000 recipients, at least 2 h 13 min"),
        (120, 60_000, 42.4, "120 calls for 60,000 recipients, at least 42 s"),
    ],
)
def test_the_estimate_line_names_calls_recipients_and_time(
    calls: int, recipients: int, seconds: float, line: str
) -> None:
    """The estimate: calls, recipients and the shortest time the budget allows."""
    estimate = nim.BatchEstimate(calls, seconds)
    progress = nim.Progress(0, recipients, 0)
    assert estimate_line(estimate, progress, recipients) == f"{line} at the current budget"


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
    """Every chunk accepted: the summary on stdout, only the estimate on stderr, status 0."""
    main(["batch", "alice", "hello", "--to", _write_accids(tmp_path / "to.txt", 1200)])
    out, err = capsys.readouterr()
    assert json.loads(out) == _summary(accepted=1200, calls=3)
    assert err == "nim-async: 3 calls for 1,200 recipients, at least 0.0 s at the current budget\n"


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
    assert json.loads(out) == _summary(accepted=1, unregistered=2)
    assert err == "nim-async: 1 calls for 3 recipients, at least 0.0 s at the current budget\n"


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
    out, line = _batch_error_line(capsys)
    summary = json.loads(out)
    assert (summary["accepted"], summary["stopped"]) == (0, "ParameterError")
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
def test_batch_with_a_surely_unsent_chunk_exits_1(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One chunk of three refused (419, a refusal of that chunk only): status 1, its
    recipients in --failed-to."""
    emulator.fail_every("msg/sendBatchMsg", 2, 419)
    failed_to = tmp_path / "failed.txt"
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "batch",
                "alice",
                "hello",
                "--to",
                _write_accids(tmp_path / "to.txt", 1500),
                "--failed-to",
                str(failed_to),
            ]
        )
    assert exited.value.code == 1
    out, line = _batch_error_line(capsys)
    summary = json.loads(out)
    assert (summary["accepted"], summary["failed_chunks"]) == (1000, 1)
    assert (summary["surely_unsent"], summary["maybe_sent"]) == (500, 0)
    assert line.startswith("nim-async: 1 chunks failed (500 recipients); first error: NimAPIError")
    assert len(failed_to.read_text().split()) == 500


@pytest.mark.usefixtures("served_env")
def test_batch_whose_only_failures_may_have_been_sent_exits_3(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without reconciling, a chunk answered 500 may have been sent: status 3, its
    recipients in --maybe-sent-to and not in --failed-to."""
    emulator.fail_every("msg/sendBatchMsg", 2, 500, after=True)
    failed_to, maybe_to = tmp_path / "failed.txt", tmp_path / "maybe.txt"
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "batch",
                "alice",
                "hello",
                "--to",
                _write_accids(tmp_path / "to.txt", 1500),
                "--no-reconcile",
                "--failed-to",
                str(failed_to),
                "--maybe-sent-to",
                str(maybe_to),
            ]
        )
    assert exited.value.code == 3
    out, line = _batch_error_line(capsys)
    summary = json.loads(out)
    assert (summary["accepted"], summary["surely_unsent"], summary["maybe_sent"]) == (1000, 0, 500)
    assert "may have been sent and could not be settled" in line
    assert failed_to.read_text() == ""
    assert len(set(maybe_to.read_text().split())) == 500


@pytest.mark.usefixtures("served_env")
def test_batch_settles_a_maybe_sent_chunk_with_the_history_and_exits_0(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With reconciling (the default), the same chunk is found in the history: delivered."""
    emulator.fail_every("msg/sendBatchMsg", 2, 500, after=True)
    main(
        [
            "batch",
            "alice",
            "hello",
            "--to",
            _write_accids(tmp_path / "to.txt", 60),
            "--batch-size",
            "20",
            "--timeout",
            "0.1",
        ]
    )
    out, err = capsys.readouterr()
    assert json.loads(out)["accepted"] == 60
    assert "settled 1 of 1 chunks that may have been sent" in err
    assert Counter(m.to for m in emulator.messages).most_common(1)[0][1] == 1


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
    assert _one_error_line(capsys)[1] == f"nim-async: cannot read {binary}: line 1: not UTF-8 text"


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


def _csv(path: Path, count: int, header: str = "name,accid,city") -> str:
    rows = "".join(f'"User, no. {n}",user{n},Hangzhou\n' for n in range(count))
    # With a byte order mark, as spreadsheets write it.
    path.write_text(f"{header}\n{rows}", encoding="utf-8-sig")
    return str(path)


@pytest.mark.usefixtures("served_env")
def test_batch_reads_a_csv_column(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`--column NAME` reads the accids from that column of a CSV file with a header."""
    main(["batch", "alice", "hi", "--to", _csv(tmp_path / "to.csv", 700), "--column", "accid"])
    out, err = capsys.readouterr()
    assert json.loads(out) == _summary(accepted=700, calls=2)
    assert err == "nim-async: 2 calls for 700 recipients, at least 0.0 s at the current budget\n"
    assert sorted(m.to for m in emulator.messages) == sorted(f"user{n}" for n in range(700))


@pytest.mark.usefixtures("served_env")
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,id\nbob,bob\n", "has no column 'accid': its first row is 'name', 'id'"),
        ("bob\ncarol\n", "has no column 'accid': its first row is 'bob'"),
        ("", "is empty: --column needs a CSV file with a header row"),
    ],
    ids=["other-columns", "no-header", "empty"],
)
def test_batch_without_the_csv_column_exits_2_before_anything_is_sent(
    emulator: NimEmulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    message: str,
) -> None:
    """A missing column, or a file without a header row, is one line and status 2."""
    source = tmp_path / "to.csv"
    source.write_text(text)
    with pytest.raises(SystemExit) as exited:
        main(["batch", "alice", "hi", "--to", str(source), "--column", "accid"])
    assert exited.value.code == 2
    out, line = _one_error_line(capsys)
    assert line == f"nim-async: {source} {message}"
    assert (out, emulator.calls) == ("", [])


@pytest.mark.usefixtures("served_env")
def test_batch_from_stdin_says_the_count_is_unknown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stdin is read once, so it is not counted: the estimate line says so."""
    monkeypatch.setattr("sys.stdin", io.StringIO("accid\nbob\ncarol\n"))
    main(["batch", "alice", "hi", "--column", "accid"])
    out, err = capsys.readouterr()
    assert json.loads(out)["accepted"] == 2
    assert err == (
        "nim-async: the number of recipients is unknown (stdin or a pipe), "
        "so there is no estimate\n"
    )


@pytest.mark.usefixtures("served_env")
def test_batch_from_a_pipe_reads_it_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A named pipe (as `--to <(...)` gives) is not counted first: it is read once, by the job."""
    pipe = tmp_path / "accids"
    os.mkfifo(pipe)

    def write() -> None:
        with pipe.open("w") as out:
            out.writelines(f"user{n}\n" for n in range(600))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        main(["batch", "alice", "hi", "--to", str(pipe)])
    finally:
        writer.join(timeout=20)
    out, err = capsys.readouterr()
    assert json.loads(out) == _summary(accepted=600, calls=2)
    assert "is unknown (stdin or a pipe)" in err


@pytest.mark.usefixtures("served_env")
def test_batch_with_a_journal_resumes_and_never_resends_what_was_done(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Refused chunks fail the first run (status 1); the same command again sends only
    them: status 0, every recipient exactly once, the summary covers the whole job."""
    command = ["batch", "alice", "hi", "--to", _write_accids(tmp_path / "to.txt", 3000)]
    command += ["--journal", str(tmp_path / "job.sqlite3")]
    emulator.fail_every("msg/sendBatchMsg", 3, 419)
    with pytest.raises(SystemExit) as exited:
        main(command)
    assert exited.value.code == 1
    out, line = _batch_error_line(capsys)
    assert json.loads(out) == _summary(accepted=2000, failed_chunks=2, surely_unsent=1000, calls=6)
    assert line.startswith("nim-async: 2 chunks failed (1000 recipients); first error: ")

    emulator.fail_every("msg/sendBatchMsg", 0, 419)
    main(command)
    out, err = capsys.readouterr()
    assert json.loads(out) == _summary(accepted=3000, calls=2, resumed_chunks=6)
    assert err.startswith(
        "nim-async: resuming: the journal records 2,000 recipients as done; "
        "2 calls for the remaining 1,000 recipients, at least "
    )
    assert err.endswith(" at the current budget\n")
    assert [call.code for call in emulator.calls].count(200) == 6
    deliveries = Counter(m.to for m in emulator.messages)
    assert len(deliveries) == 3000
    assert set(deliveries.values()) == {1}


@pytest.mark.usefixtures("served_env")
def test_batch_with_a_journal_of_another_message_exits_2_before_anything_is_sent(
    emulator: NimEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A journal records one job: another message on it is JournalMismatch, one line."""
    to = _write_accids(tmp_path / "to.txt", 10)
    journal = str(tmp_path / "job.sqlite3")
    main(["batch", "alice", "hello", "--to", to, "--journal", journal])
    capsys.readouterr()
    calls = len(emulator.calls)
    with pytest.raises(SystemExit) as exited:
        main(["batch", "alice", "goodbye", "--to", to, "--journal", journal])
    assert exited.value.code == 2
    out, line = _one_error_line(capsys)
    assert line.startswith(f"nim-async: JournalMismatch: the journal {journal!r} records another")
    assert (out, len(emulator.calls)) == ("", calls)


@pytest.mark.usefixtures("served_env")
def test_a_journal_that_is_not_one_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A --journal file that SQLite cannot use is the user's file: one line, status 2."""
    journal = tmp_path / "notes.txt"
    journal.write_text("not a database\n" * 100)
    to = _write_accids(tmp_path / "to.txt", 10)
    with pytest.raises(SystemExit) as exited:
        main(["batch", "alice", "hello", "--to", to, "--journal", str(journal)])
    assert exited.value.code == 2
    assert _one_error_line(capsys)[1].startswith(f"nim-async: the journal {str(journal)!r} ")


def test_resend_in_flight_needs_a_journal(capsys: pytest.CaptureFixture[str]) -> None:
    """`--resend-in-flight` alone is a bad argument: status 2."""
    with pytest.raises(SystemExit) as exited:
        main(["batch", "alice", "hello", "--resend-in-flight"])
    assert exited.value.code == 2
    assert _one_error_line(capsys)[1] == "nim-async: --resend-in-flight needs --journal"


@pytest.mark.usefixtures("served_env")
def test_a_stopped_batch_counts_and_writes_the_unread_recipients(
    emulator: NimEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A job stopped early (a wrong secret) leaves the rest of the file unread:
    counted in the summary and written to --failed-to with the refused ones."""
    monkeypatch.setenv("NIM_APP_SECRET", "wrong-secret")
    failed_to = tmp_path / "unsent.txt"
    to = _write_accids(tmp_path / "to.txt", 6000)
    with pytest.raises(SystemExit) as exited:
        main(["batch", "alice", "hello", "--to", to, "--failed-to", str(failed_to)])
    assert exited.value.code == 1
    summary = json.loads(_batch_error_line(capsys)[0])
    assert summary["stopped"] == "ParameterError"
    assert summary["unread"] > 0
    assert summary["surely_unsent"] + summary["unread"] == 6000
    assert failed_to.read_text().split() == [f"user{n}" for n in range(6000)]


def test_batch_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`batch --help` lists its options and the exit statuses."""
    with pytest.raises(SystemExit) as exited:
        main(["batch", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--to", "--column", "--attach", "--journal", "--resend-in-flight"):
        assert option in out
    assert "--failed-to" in out
    assert "journal of another job" in out
