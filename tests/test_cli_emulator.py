"""`nim-async emulator`: accounts files, the state route, --dump, and what they build on.

The command runs as a real process on a free loopback port and real clients talk
to it. SIGINT (Ctrl-C) and SIGTERM each shut it down, print its summary and
write its --dump file; it then exits with status 130 or 143. Files that cannot
be used are one line on stderr and status 2, before anything is served.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import nim_async as nim
from nim_async._cli import main
from nim_async.testing import NimEmulator

from ._raw import KEY, SECRET, TEXT_BODY, call, send
from ._support import APP_KEY, APP_SECRET, free_port, make_client

_MAIN = "from nim_async._cli import main; main()"
STARTUP = 30.0  # seconds for the process to answer: generous, for a loaded machine
EXIT_WAIT = 30.0  # seconds for it to end once signalled


class _Served:
    """A running ``nim-async emulator`` process, its port and its output files."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, out: Path, err: Path) -> None:
        self.process = process
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/nimserver/"
        self.state_url = f"http://127.0.0.1:{port}/emulator/state"
        self._out = out
        self._err = err

    def output(self) -> tuple[str, str]:
        """What it printed so far: (stdout, stderr)."""
        return self._out.read_text(encoding="utf-8"), self._err.read_text(encoding="utf-8")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` and return the exit status once it has ended."""
        self.process.send_signal(sig)
        return self.process.wait(timeout=EXIT_WAIT)


@contextlib.contextmanager
def _serving(tmp_path: Path, *options: str) -> Iterator[_Served]:
    """Run ``nim-async emulator --port <free> *options`` until it answers its state route."""
    port = free_port()
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = os.environ | {"NIM_APP_KEY": APP_KEY, "NIM_APP_SECRET": APP_SECRET}
    command = [sys.executable, "-c", _MAIN, "emulator", "--port", str(port), *options]
    # Output to files, not pipes: nothing reads a pipe while the test runs, and
    # uvicorn's access log must never block on a full one.
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
    served = _Served(process, port, out, err)
    try:
        _wait_until_answering(served)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=EXIT_WAIT)


def _wait_until_answering(served: _Served) -> None:
    # An answer from the app, not a connection: the socket listens before the
    # server runs, and only a running server has its signal handlers in place.
    deadline = time.monotonic() + STARTUP
    while True:
        if served.process.poll() is not None:
            pytest.fail(f"the emulator exited {served.process.returncode}: {served.output()}")
        try:
            if httpx.get(served.state_url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the emulator did not answer within {STARTUP:g} s: {served.output()}")
        time.sleep(0.05)


def _run(*options: str) -> subprocess.CompletedProcess[str]:
    """Run ``nim-async emulator --port <free> *options`` to its end (it must not serve)."""
    command = [sys.executable, "-c", _MAIN, "emulator", "--port", str(free_port()), *options]
    env = os.environ | {"NIM_APP_KEY": APP_KEY, "NIM_APP_SECRET": APP_SECRET}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def _lines(path: Path, text: str) -> str:
    """Write ``text`` with a byte order mark and CRLF line ends, as Windows editors do."""
    path.write_bytes(text.replace("\n", "\r\n").encode("utf-8-sig"))
    return str(path)


def _batch(served: _Served, sender: str, to: list[str]) -> nim.BatchResult:
    async def send_batch() -> nim.BatchResult:
        async with make_client(base_url=served.base_url) as client:
            return await client.send_batch_msg(sender, to, nim.Text("hello"))

    return anyio.run(send_batch)


def _send(served: _Served, sender: str, to: str) -> nim.SendResult:
    async def send_one() -> nim.SendResult:
        async with make_client(base_url=served.base_url) as client:
            return await client.send_msg(sender, to, nim.Text("hello"))

    return anyio.run(send_one)


# --- the served command --------------------------------------------------------


def test_the_emulator_command_serves_on_a_port(tmp_path: Path) -> None:
    """`nim-async emulator --port N` answers real clients and prints its URLs."""
    with _serving(tmp_path) as served:
        assert _send(served, "alice", "bob").msgid > 0
        out, _ = served.output()
    assert served.base_url in out
    assert served.state_url in out


def test_an_accounts_file_makes_every_other_accid_unregistered(tmp_path: Path) -> None:
    """--accounts FILE: the listed accids exist; a batch reports the others in `unregister`
    and a single send to one of them is refused (blank lines and the BOM are dropped)."""
    accounts = _lines(tmp_path / "accounts.txt", "alice\n\nbob\n  carol  \n\n")
    with _serving(tmp_path, "--accounts", accounts) as served:
        result = _batch(served, "alice", ["bob", "dave", "carol", "erin"])
        with pytest.raises(nim.NotFound):
            _send(served, "alice", "dave")
        state = httpx.get(served.state_url).json()
    assert sorted(result.unregister) == ["dave", "erin"]
    assert result.accepted == 2
    assert (state["accounts"], state["unregistered"]) == (["alice", "bob", "carol"], [])
    assert sorted(m["to"] for m in state["messages"]) == ["bob", "carol"]


def test_an_unregistered_file_makes_only_the_listed_accids_unregistered(tmp_path: Path) -> None:
    """--unregistered FILE: every accid exists except the listed ones."""
    unregistered = _lines(tmp_path / "unregistered.txt", "dave\n\nerin\n")
    with _serving(tmp_path, "--unregistered", unregistered) as served:
        result = _batch(served, "alice", ["bob", "dave", "carol", "erin", "frank"])
        with pytest.raises(nim.NotFound):
            _send(served, "alice", "erin")
        state = httpx.get(served.state_url).json()
    assert sorted(result.unregister) == ["dave", "erin"]
    assert result.accepted == 3
    assert (state["accounts"], state["unregistered"]) == (None, ["dave", "erin"])


def test_the_state_route_shows_the_stored_messages_and_the_calls(tmp_path: Path) -> None:
    """GET /emulator/state answers JSON, unsigned: the messages with their ids, and the
    calls with their forms, but no headers and so no CheckSum."""
    with _serving(tmp_path) as served:
        sent = _send(served, "alice", "bob")
        _batch(served, "alice", ["carol", "dave"])
        response = httpx.get(served.state_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    state = response.json()
    assert state["app_key"] == APP_KEY
    assert [(m["action"], m["from"], m["to"]) for m in state["messages"]] == [
        ("msg/sendMsg", "alice", "bob"),
        ("msg/sendBatchMsg", "alice", "carol"),
        ("msg/sendBatchMsg", "alice", "dave"),
    ]
    first = state["messages"][0]
    assert (first["msgid"], first["timetag"]) == (sent.msgid, sent.timetag)
    assert json.loads(first["body"]) == {"msg": "hello"}
    # The state route's own requests are not calls of NIM's API.
    assert [(c["action"], c["code"]) for c in state["calls"]] == [
        ("msg/sendMsg", 200),
        ("msg/sendBatchMsg", 200),
    ]
    assert state["calls"][1]["form"]["toAccids"] == '["carol","dave"]'
    assert APP_SECRET not in response.text
    assert "checksum" not in response.text.lower()


@pytest.mark.parametrize(
    ("sig", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_signal_writes_the_dump_with_what_the_route_answers(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    """--dump FILE: SIGINT (status 130) and SIGTERM (143) each shut the server down,
    print the summary and write FILE with the bytes the route answers."""
    dump = tmp_path / "out" / "state.json"
    dump.parent.mkdir()
    dump.write_text("an older dump", encoding="utf-8")
    with _serving(tmp_path, "--dump", str(dump)) as served:
        _send(served, "alice", "bob")
        _batch(served, "alice", ["carol", "dave"])
        route = httpx.get(served.state_url).content
        exit_status = served.stop(sig)
        out, err = served.output()
    assert exit_status == status
    assert dump.read_bytes() == route
    assert len(json.loads(route)["messages"]) == 3
    assert os.listdir(dump.parent) == ["state.json"]  # no temporary file left behind
    assert out.splitlines()[-1] == "NIM emulator answered 2 calls: code 200 ×2; 0 blocked (416)"
    assert "Traceback" not in err


# --- files that cannot be used, and the options' rules ---------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something else listens on.

    The in-process runs below get it: a command that went on to serve instead of
    stopping on its files fails at once on the port, where it would serve forever.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _fails(capsys: pytest.CaptureFixture[str], port: int, *options: str) -> tuple[int, str, str]:
    """Run ``nim-async emulator`` in this process; its exit status, stdout and stderr."""
    with pytest.raises(SystemExit) as exited:
        main(["emulator", "--port", str(port), *options])
    out, err = capsys.readouterr()
    assert isinstance(exited.value.code, int)
    return exited.value.code, out, err


def test_an_accounts_file_that_cannot_be_read_exits_2_before_serving(tmp_path: Path) -> None:
    """A missing accounts file, in a real process: one line on stderr, status 2, no traceback."""
    missing = tmp_path / "missing.txt"
    finished = _run("--accounts", str(missing))
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr == f"nim-async: cannot read {missing}: No such file or directory\n"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory"),
        ("directory", "Is a directory"),
        (b"jos\xe9\n", "not UTF-8 text"),
    ],
    ids=["missing", "a directory", "latin-1"],
)
def test_an_unregistered_file_that_cannot_be_read_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    taken_port: int,
    content: bytes | str | None,
    reason: str,
) -> None:
    """--unregistered with a file that cannot be read: one line naming it and why, status 2."""
    path = tmp_path / "unregistered.txt"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    status, out, err = _fails(capsys, taken_port, "--unregistered", str(path))
    assert (status, out, err) == (2, "", f"nim-async: cannot read {path}: {reason}\n")


def test_accounts_and_unregistered_together_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], taken_port: int
) -> None:
    """--accounts and --unregistered are mutually exclusive: argparse's usage error, status 2."""
    accounts = _lines(tmp_path / "accounts.txt", "alice\n")
    status, out, err = _fails(
        capsys, taken_port, "--accounts", accounts, "--unregistered", accounts
    )
    assert (status, out) == (2, "")
    assert "argument --unregistered: not allowed with argument --accounts" in err


def test_a_dump_file_that_cannot_be_written_exits_2_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], taken_port: int
) -> None:
    """--dump into a directory that does not exist: one line on stderr, status 2, at once."""
    dump = tmp_path / "missing" / "state.json"
    status, out, err = _fails(capsys, taken_port, "--dump", str(dump))
    expected = f"nim-async: cannot write {dump}: No such file or directory\n"
    assert (status, out, err) == (2, "", expected)


def test_a_port_that_cannot_be_bound_exits_2(
    capsys: pytest.CaptureFixture[str], taken_port: int
) -> None:
    """A port another program listens on: after the URLs, one line on stderr, status 2."""
    status, _, err = _fails(capsys, taken_port)
    assert (status, err) == (
        2,
        f"nim-async: cannot serve on 127.0.0.1:{taken_port}: Address already in use\n",
    )


def test_a_dump_that_fails_at_exit_is_one_line_and_status_2(tmp_path: Path) -> None:
    """A dump directory removed while serving: the summary, then one line and status 2."""
    directory = tmp_path / "dumps"
    directory.mkdir()
    dump = directory / "state.json"
    with _serving(tmp_path, "--dump", str(dump)) as served:
        directory.rmdir()
        exit_status = served.stop(signal.SIGTERM)
        out, err = served.output()
    assert exit_status == 2
    assert out.splitlines()[-1] == "NIM emulator answered 0 calls; 0 blocked (416)"
    assert err.splitlines()[-1] == f"nim-async: cannot write {dump}: No such file or directory"
    assert "Traceback" not in err


def test_the_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    """`nim-async emulator --help` names the options, the state route and the exit
    statuses, in plain text (no reST markup)."""
    with pytest.raises(SystemExit) as exited:
        main(["emulator", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for text in ("--accounts FILE", "--unregistered FILE", "--dump FILE", "/emulator/state"):
        assert text in out
    assert "\n  130 " in out
    assert "\n  143 " in out
    assert "``" not in out


# --- in process: the emulator's own options -------------------------------------


def _batch_form(*to: str) -> dict[str, str]:
    return {"fromAccid": "alice", "toAccids": json.dumps(list(to)), "type": "0", "body": TEXT_BODY}


@pytest.mark.anyio
async def test_unregistered_accids_do_not_exist_and_every_other_does() -> None:
    """NimEmulator(unregistered=...): sends to a listed accid are 404, batches report it."""
    emu = NimEmulator(KEY, SECRET, unregistered=["zed"])
    assert (await send(emu, to="anyone"))["code"] == 200
    assert (await send(emu, to="zed"))["code"] == 404
    answer = await call(emu, "msg/sendBatchMsg", _batch_form("bob", "zed", "carol"))
    assert answer["unregister"] == ["zed"]
    assert [m.to for m in emu.messages] == ["anyone", "bob", "carol"]


@pytest.mark.anyio
async def test_register_takes_an_accid_out_of_unregistered() -> None:
    """register() makes a listed unregistered accid exist."""
    emu = NimEmulator(KEY, SECRET, unregistered=["zed", "yan"])
    emu.register("zed")
    assert (await send(emu, to="zed"))["code"] == 200
    assert emu.state()["unregistered"] == ["yan"]


def test_accounts_and_unregistered_together_are_refused() -> None:
    """Who exists is given one way: accounts or unregistered, not both."""
    with pytest.raises(ValueError, match="not both"):
        NimEmulator(KEY, SECRET, accounts=["alice"], unregistered=["zed"])


@pytest.mark.anyio
async def test_the_state_route_is_unsigned_unrecorded_and_equal_to_state() -> None:
    """GET /emulator/state needs no signature, is not a call, and answers `state()`."""
    emu = NimEmulator(KEY, SECRET, accounts=["bob", "alice"])
    await send(emu)
    async with httpx.AsyncClient(transport=emu.transport(), base_url="http://nim.test") as client:
        response = await client.get("/emulator/state")
    assert response.status_code == 200
    assert response.json() == emu.state()
    assert len(emu.calls) == 1


@pytest.mark.anyio
async def test_state_has_a_stable_shape() -> None:
    """`state()`: the documented keys, messages with `from`, calls without headers."""
    emu = NimEmulator(KEY, SECRET)
    await send(emu)
    await call(emu, "msg/fileUpload", {"type": "png"}, files={"content": b"\x89PNG"})
    state = emu.state()
    assert list(state) == ["app_key", "accounts", "unregistered", "calls", "messages"]
    assert (state["app_key"], state["accounts"], state["unregistered"]) == (KEY, None, [])
    send_call, upload_call = state["calls"]
    assert list(send_call) == ["action", "status", "code", "at", "form", "files"]
    assert send_call["form"]["to"] == "bob"
    assert (upload_call["action"], upload_call["files"]) == ("msg/fileUpload", {"content": 4})
    (message,) = state["messages"]
    expected: dict[str, Any] = {
        "action": "msg/sendMsg",
        "msgid": emu.messages[0].msgid,
        "timetag": emu.messages[0].timetag,
        "from": "alice",
        "to": "bob",
        "team": False,
        "type": 0,
        "body": TEXT_BODY,
        "attach": None,
        "recalled": False,
        "deleted_one_way": False,
        "deleted": False,
        "read_by": [],
    }
    assert message == expected


def test_write_state_replaces_the_file_whole(tmp_path: Path) -> None:
    """write_state() replaces an older file with `state()` as JSON, leaving nothing beside it."""
    emu = NimEmulator(KEY, SECRET)
    target = tmp_path / "state.json"
    target.write_text("older", encoding="utf-8")
    emu.write_state(target)
    assert json.loads(target.read_text(encoding="utf-8")) == emu.state()
    assert os.listdir(tmp_path) == ["state.json"]


def test_write_state_that_fails_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    """A write_state() that cannot replace its target raises OSError naming it, and
    leaves no temporary file behind."""
    emu = NimEmulator(KEY, SECRET)
    target = tmp_path / "state.json"
    target.mkdir()
    (target / "inside").write_text("kept", encoding="utf-8")
    with pytest.raises(IsADirectoryError) as raised:
        emu.write_state(target)
    assert raised.value.filename == str(target)
    assert os.listdir(tmp_path) == ["state.json"]
    assert (target / "inside").read_text(encoding="utf-8") == "kept"
