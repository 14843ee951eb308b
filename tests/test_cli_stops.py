"""``nim-async batch`` stopped by real signals, as a real process: the first SIGINT or
SIGTERM waits for the answers in flight, a second stops at once; either way the summary,
the ``--failed-to`` and ``--maybe-sent-to`` files and the journal say where each recipient
stands, the exit status is 130 or 143, and the same command resumes with nobody twice.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from nim_async.testing import NimEmulator

from ._cli_process import Arrivals, start, wait_until

ACTION = "msg/sendBatchMsg"
CHUNK = 100
RECIPIENTS = [f"user{n}" for n in range(2000)]  # 20 chunks, 4 in flight at once


def _batch_command(tmp_path: Path, *extra: str) -> list[str]:
    to = tmp_path / "to.txt"
    to.write_text("".join(f"{a}\n" for a in RECIPIENTS))
    return [
        "batch",
        "alice",
        "news",
        "--to",
        str(to),
        "--batch-size",
        str(CHUNK),
        "--journal",
        str(tmp_path / "job.sqlite3"),
        "--failed-to",
        str(tmp_path / "unsent.txt"),
        "--maybe-sent-to",
        str(tmp_path / "maybe.txt"),
        *extra,
    ]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _delivered(emulator: NimEmulator) -> Counter[str]:
    return Counter(message.to for message in emulator.messages)


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_first_signal_waits_for_the_answers_in_flight_and_writes_everything(
    emulator: NimEmulator,
    served: tuple[str, Arrivals],
    tmp_path: Path,
    sent: signal.Signals,
) -> None:
    """With a second wave of calls on the wire, one signal: they are answered and recorded,
    nothing more starts, the summary and --failed-to cover the rest, exit 128 + the signal;
    then the same command sends exactly the rest."""
    base_url, arrivals = served
    emulator.set_latency(1.0, ACTION)
    process = start(tmp_path, base_url, *_batch_command(tmp_path))
    # The first wave answered, the second on the wire (it arrived; its answer is a second away).
    wait_until(lambda: arrivals.count[ACTION] >= 8, "the second wave never arrived")
    process.send_signal(sent)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + sent.value, err
    assert "Traceback" not in err
    summary = json.loads(out)
    answered = [call for call in emulator.calls if call.action == ACTION]
    # Every call that went out was answered in the grace period: none is maybe-sent.
    assert (summary["maybe_sent"], summary["stopped"]) == (0, sent.name)
    assert summary["calls"] == len(answered) == arrivals.count[ACTION] >= 8
    assert summary["accepted"] == len(answered) * CHUNK
    unsent = _lines(tmp_path / "unsent.txt")
    assert summary["surely_unsent"] + summary["unread"] == len(unsent)
    assert sorted(_delivered(emulator)) == sorted(set(RECIPIENTS) - set(unsent))
    assert _lines(tmp_path / "maybe.txt") == []
    assert f"{sent.name}: stopping" in err
    assert err.rstrip().splitlines()[-1].startswith(f"nim-async: stopped by {sent.name}: ")

    emulator.set_latency(0.0, ACTION)
    again = start(tmp_path, base_url, *_batch_command(tmp_path))
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert _delivered(emulator) == Counter(RECIPIENTS)
    assert _lines(tmp_path / "unsent.txt") == []


def test_a_second_signal_stops_at_once_and_the_resume_settles_what_was_in_flight(
    emulator: NimEmulator, served: tuple[str, Arrivals], tmp_path: Path
) -> None:
    """SIGTERM, then SIGTERM again while four calls are on the wire for 30 s: exit 143 at
    once, those four chunks written as maybe-sent, the rest as surely unsent; the same
    command settles the four with the service's history and sends the rest: each once."""
    base_url, arrivals = served
    emulator.set_latency(30.0, ACTION)
    # A grace longer than the answers: only the second signal can end it early.
    process = start(tmp_path, base_url, *_batch_command(tmp_path, "--grace", "60"))
    wait_until(lambda: arrivals.count[ACTION] >= 4, "the first wave never arrived")
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)  # far less than the 30 s answers
    assert process.returncode == 143, err
    assert "SIGTERM again: stopping now" in err
    summary = json.loads(out)
    maybe = _lines(tmp_path / "maybe.txt")
    unsent = _lines(tmp_path / "unsent.txt")
    assert summary["maybe_sent"] == len(maybe) == 4 * CHUNK
    assert sorted(maybe + unsent) == sorted(RECIPIENTS)
    assert summary["accepted"] == 0

    emulator.set_latency(0.0, ACTION)
    again = start(tmp_path, base_url, *_batch_command(tmp_path))
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert json.loads(out)["maybe_sent"] == 0
    assert _delivered(emulator) == Counter(RECIPIENTS)


def test_the_grace_period_ends_and_the_calls_still_in_flight_are_maybe_sent(
    emulator: NimEmulator, served: tuple[str, Arrivals], tmp_path: Path
) -> None:
    """--grace 0.5 with answers 30 s away: SIGINT ends the job half a second later, exit 130."""
    base_url, arrivals = served
    emulator.set_latency(30.0, ACTION)
    process = start(tmp_path, base_url, *_batch_command(tmp_path, "--grace", "0.5"))
    wait_until(lambda: arrivals.count[ACTION] >= 4, "the first wave never arrived")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    summary = json.loads(out)
    assert summary["maybe_sent"] == 4 * CHUNK
    assert summary["surely_unsent"] + summary["unread"] == len(RECIPIENTS) - 4 * CHUNK
    assert "waiting up to 0.5 s" in err


def test_sigterm_stops_a_single_send_with_143(
    emulator: NimEmulator, served: tuple[str, Arrivals], tmp_path: Path
) -> None:
    """Outside a batch, SIGTERM ends the command with 143 and one line, no traceback."""
    base_url, arrivals = served
    emulator.set_latency(30.0, "msg/sendMsg")
    process = start(tmp_path, base_url, "send", "alice", "bob", "hi")
    wait_until(lambda: arrivals.count["msg/sendMsg"] >= 1, "the call never arrived")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 143
    assert "Traceback" not in err


def test_a_signal_stops_a_job_whose_pipe_writer_has_gone_quiet(
    emulator: NimEmulator, served: tuple[str, Arrivals], tmp_path: Path
) -> None:
    """The accids come through a pipe whose writer pauses: SIGINT still stops the job at
    once, with its summary; the accids read and sent are accepted, the rest unknown."""
    base_url, _ = served
    pipe = tmp_path / "accids"
    os.mkfifo(pipe)
    process = start(tmp_path, base_url, "batch", "alice", "hi", "--to", str(pipe))
    with pipe.open("w") as writer:
        writer.writelines(f"user{n}\n" for n in range(750))
        writer.flush()
        time.sleep(1.0)  # the job waits for more; the writer is quiet
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    summary = json.loads(out)
    assert summary["stopped"] == "SIGINT"
    assert summary["unread"] is None
    # One full chunk went out while the writer wrote; the half chunk waits, unsent.
    assert summary["accepted"] == sum(_delivered(emulator).values()) == 500
    assert summary["surely_unsent"] == 250
