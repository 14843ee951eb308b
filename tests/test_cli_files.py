"""``nim-async batch`` and the files it reads and writes, as a real process: an output that
is an input is refused, outputs are written whole, a byte order mark is dropped from files
and standard input alike, CSV needs --column, a bad line mid-job stops the job with its
summary, and duplicates are sent once unless kept; plus --version and plain help.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from nim_async.testing import NimEmulator

from ._cli_process import Arrivals, start

BATCH = "msg/sendBatchMsg"


def _run(
    tmp_path: Path, base_url: str, *arguments: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command to its end; ``stdin`` is given as bytes, exactly."""
    source = tmp_path / "stdin.bin"
    source.write_bytes(stdin or b"")
    with source.open("rb") as given:
        process = start(tmp_path, base_url, *arguments, stdin=given)
        out, err = process.communicate(timeout=120)
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _delivered(emulator: NimEmulator) -> Counter[str]:
    return Counter(message.to for message in emulator.messages)


@pytest.mark.parametrize(
    ("output", "input_flag"),
    [("--failed-to", "--to"), ("--maybe-sent-to", "--to"), ("--failed-to", "--journal")],
)
def test_an_output_that_is_an_input_is_refused_before_anything_is_sent(
    served: tuple[str, Arrivals], tmp_path: Path, output: str, input_flag: str
) -> None:
    """`--to ids.txt --failed-to ids.txt` would lose the unread rest: exit 2, nothing sent,
    the file untouched. The same file under another name (a symlink) counts too."""
    base_url, arrivals = served
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"user{n}\n" for n in range(50)))
    (tmp_path / "link.txt").symlink_to(ids)
    journal = tmp_path / "job.sqlite3"
    files = {"--to": str(ids), "--journal": str(journal)}
    files[input_flag] = str(ids) if input_flag == "--to" else str(journal)
    target = str(tmp_path / "link.txt") if input_flag == "--to" else str(journal)
    arguments = ["batch", "alice", "hi", *[a for flag in files.items() for a in flag]]
    done = _run(tmp_path, base_url, *arguments, output, target)
    assert done.returncode == 2
    assert f"{output} {target} is the file of {input_flag}" in done.stderr
    assert sum(arrivals.count.values()) == 0
    assert ids.read_text().count("\n") == 50


def test_outputs_are_written_whole_through_a_new_file(
    emulator: NimEmulator, served: tuple[str, Arrivals], tmp_path: Path
) -> None:
    """--failed-to replaces the old file with a new one (rename), and leaves no temporary
    file: a reader never sees half of it."""
    base_url, _ = served
    emulator.fail_next(BATCH, 414)  # a refusal every chunk would meet: the job stops
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"user{n}\n" for n in range(1200)))
    unsent = tmp_path / "unsent.txt"
    unsent.write_text("an older list\n")
    before = unsent.stat().st_ino
    done = _run(
        tmp_path, base_url, "batch", "alice", "hi", "--to", str(ids), "--failed-to", str(unsent)
    )
    assert done.returncode == 1
    written = unsent.read_text().splitlines()
    assert len(written) >= 500  # at least the refused chunk
    assert sorted([*written, *_delivered(emulator)]) == sorted(f"user{n}" for n in range(1200))
    assert unsent.stat().st_ino != before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_a_byte_order_mark_is_dropped_from_files_and_stdin_alike(
    emulator: NimEmulator, served: tuple[str, Arrivals], tmp_path: Path, source: str
) -> None:
    base_url, _ = served
    data = "\ufeffuser0\r\nuser1\r\nuser2\r\n".encode()
    if source == "file":
        (tmp_path / "ids.txt").write_bytes(data)
        done = _run(tmp_path, base_url, "batch", "alice", "hi", "--to", str(tmp_path / "ids.txt"))
    else:
        done = _run(tmp_path, base_url, "batch", "alice", "hi", "--to", "-", stdin=data)
    assert done.returncode == 0, done.stderr
    assert _delivered(emulator) == Counter(["user0", "user1", "user2"])


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_csv_with_several_columns_needs_column(
    served: tuple[str, Arrivals], tmp_path: Path, source: str
) -> None:
    """Whole lines such as `0,u000000,u0@example.com` are never sent as accids: exit 2,
    naming the header seen, before anything is sent."""
    base_url, arrivals = served
    data = "id,accid,email\n" + "".join(f"{n},u{n:06d},u{n}@example.com\n" for n in range(10))
    if source == "file":
        (tmp_path / "people.csv").write_text(data)
        to = str(tmp_path / "people.csv")
        done = _run(tmp_path, base_url, "batch", "alice", "hi", "--to", to)
    else:
        to = "stdin"
        done = _run(tmp_path, base_url, "batch", "alice", "hi", "--to", "-", stdin=data.encode())
    assert done.returncode == 2
    assert done.stderr == (
        f"nim-async: {to} is CSV (its first row is 'id', 'accid', 'email'): "
        "name the column of accids with --column\n"
    )
    assert sum(arrivals.count.values()) == 0


def test_a_bad_line_mid_job_on_stdin_stops_the_job_with_its_summary(
    emulator: NimEmulator, served: tuple[str, Arrivals], tmp_path: Path
) -> None:
    """A CSV cell over the field limit 3,000 rows in: the rows before it are sent, the job
    stops there, the summary and --failed-to say so, exit 2 naming the line."""
    base_url, _ = served
    rows = "".join(f"{n},u{n:06d}\n" for n in range(3000))
    data = ("id,accid\n" + rows + f"3000,{'x' * 200_000}\n" + "3001,u003001\n").encode()
    unsent = tmp_path / "unsent.txt"
    done = _run(
        tmp_path, base_url,
        "batch", "alice", "hi", "--to", "-", "--column", "accid", "--failed-to", str(unsent),
        stdin=data,
    )  # fmt: skip
    assert done.returncode == 2
    summary = json.loads(done.stdout)
    assert (summary["stopped"], summary["unread"]) == ("unreadable input", None)
    delivered = _delivered(emulator)
    assert summary["accepted"] == sum(delivered.values())
    sent_or_written = sorted([*delivered, *unsent.read_text().splitlines()])
    assert sent_or_written == [f"u{n:06d}" for n in range(3000)]
    last = done.stderr.rstrip().splitlines()[-1]
    assert last.startswith("nim-async: cannot read stdin, line 3002: field larger than")
    assert last.endswith("the lines after it were not read")


def test_a_line_that_is_not_utf8_mid_file_is_refused_before_anything_is_sent(
    served: tuple[str, Arrivals], tmp_path: Path
) -> None:
    """A file is read whole before the job (to count it): its bad line stops the command
    before any call."""
    base_url, arrivals = served
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"".join(b"user%d\n" % n for n in range(5000)) + b"\xff\xfe\n")
    done = _run(tmp_path, base_url, "batch", "alice", "hi", "--to", str(ids))
    assert done.returncode == 2
    assert "not UTF-8 text" in done.stderr
    assert "nothing was sent" in done.stderr
    assert sum(arrivals.count.values()) == 0


@pytest.mark.parametrize("keep", [False, True], ids=["dropped", "kept"])
def test_duplicates_are_sent_once_unless_kept(
    emulator: NimEmulator, served: tuple[str, Arrivals], tmp_path: Path, keep: bool
) -> None:
    """The same accid in two chunks: sent once, counted in the summary; or, with
    --keep-duplicates, sent as often as it appears."""
    base_url, _ = served
    # The repeats fall in the second chunk, their first copies in the first.
    ids = [f"user{n}" for n in range(600)] + ["user1", "user2"]
    (tmp_path / "ids.txt").write_text("".join(f"{a}\n" for a in ids))
    flags = ["--keep-duplicates"] if keep else []
    done = _run(
        tmp_path, base_url, "batch", "alice", "hi", "--to", str(tmp_path / "ids.txt"), *flags
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    if keep:
        assert _delivered(emulator) == Counter(ids)
        assert (summary["accepted"], summary["duplicates"]) == (602, 0)
    else:
        assert _delivered(emulator) == Counter(set(ids))
        assert (summary["accepted"], summary["duplicates"]) == (600, 2)
        assert "600 recipients" in done.stderr  # the estimate counts them once


def test_version_and_help_are_plain_text(tmp_path: Path) -> None:
    """`--version` names the installed version; no help text shows reST markup."""
    from nim_async import __version__

    version = _run(tmp_path, "http://127.0.0.1:9/nimserver/", "--version")
    assert (version.returncode, version.stdout) == (0, f"nim-async {__version__}\n")
    commands = ["send", "attach", "emulator", "broadcast", "recall", "upload", "batch", "demo"]
    for command in [[], *([c] for c in commands)]:
        shown = _run(tmp_path, "http://127.0.0.1:9/nimserver/", *command, "--help")
        assert shown.returncode == 0
        assert "``" not in shown.stdout, command
        assert ":class:" not in shown.stdout, command
