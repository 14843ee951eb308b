"""The emulator on a real loopback port: TCP_NODELAY, clients that leave, the closing summary.

These tests talk to uvicorn over real sockets and assert outcomes (socket options,
records, log records, printed lines), never how long anything took.
"""

from __future__ import annotations

import email.utils
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

import anyio
import httpx
import pytest

from nim_async.testing import NimEmulator

from ._raw import KEY, SECRET, signed
from ._support import free_port, listens_soon

pytestmark = pytest.mark.anyio

TEXT = {"from": "alice", "ope": "0", "to": "bob", "type": "0", "body": '{"msg":"hi"}'}
# Far longer than any test waits: a handler still sleeping at shutdown outlives
# uvicorn's grace period, which is what used to log an ERROR.
LONG_LATENCY = 60.0
RECORD_WAIT = 10.0  # seconds: generous, for a loaded machine


def _open_fds() -> Iterable[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return range(3, 4096)


def _server_side_nodelay(client: tuple[str, int], server: tuple[str, int]) -> int:
    """TCP_NODELAY of this process's socket at the server end of the connection client → server.

    The server runs in this process (a thread, or this loop), so its accepted socket is
    one of our file descriptors: found by its addresses, read through a duplicate.
    """
    for fd in _open_fds():
        try:
            sock = socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            continue
        with sock:
            try:
                if sock.getsockname()[:2] == server and sock.getpeername()[:2] == client:
                    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            except OSError:
                continue
    raise AssertionError(f"no socket of this process is the server end of {client} → {server}")


async def _nodelay_of_a_request(base_url: str) -> int:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post("msg/sendMsg.action", data=TEXT, headers=signed())
        assert response.json()["code"] == 200
        stream = response.extensions["network_stream"]
        # The connection stays open (keep-alive), so its server end is still there.
        return _server_side_nodelay(
            stream.get_extra_info("client_addr"), stream.get_extra_info("server_addr")
        )


async def test_served_connections_use_tcp_nodelay() -> None:
    """serve(): accepted connections set TCP_NODELAY, so keep-alive answers never wait for Nagle."""
    emu = NimEmulator(KEY, SECRET)
    with emu.serve() as base_url:
        assert await _nodelay_of_a_request(base_url) != 0


async def test_serve_forever_connections_use_tcp_nodelay() -> None:
    """serve_forever (the CLI's server) sets TCP_NODELAY on accepted connections too."""
    port = free_port()
    emu = NimEmulator(KEY, SECRET)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(emu.serve_forever, "127.0.0.1", port)
        with anyio.fail_after(RECORD_WAIT):
            while True:
                try:
                    nodelay = await _nodelay_of_a_request(f"http://127.0.0.1:{port}/nimserver/")
                    break
                except httpx.ConnectError:
                    await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    assert nodelay != 0


async def test_a_served_answer_has_one_date_header_from_the_skewed_clock() -> None:
    """On a real port uvicorn's Date is off: one Date, the emulator's, 600 s ahead."""
    emu = NimEmulator(KEY, SECRET, clock_skew=600)
    ahead = signed(cur_time=str(int(time.time()) + 600))
    with emu.serve() as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            stale = await client.post("msg/sendMsg.action", data=TEXT, headers=signed())
            accepted = await client.post("msg/sendMsg.action", data=TEXT, headers=ahead)
    assert stale.json()["code"] == 414
    assert "CurTime" in stale.json()["desc"]
    assert accepted.json()["code"] == 200
    for response in (stale, accepted):
        (date,) = response.headers.get_list("date")
        skewed = email.utils.parsedate_to_datetime(date).timestamp()
        assert abs(skewed - (time.time() + 600)) < 5


async def _until(condition: Callable[[], bool]) -> None:
    # Polled: the condition changes in the server's thread, which cannot set an anyio.Event here.
    with anyio.fail_after(RECORD_WAIT):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR] + [
        f"{r.name}: traceback" for r in caplog.records if r.exc_info
    ]


async def test_a_client_leaving_during_the_latency_is_recorded_and_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client gone while its answer waits (set_latency): recorded, carried out, no ERROR."""
    emu = NimEmulator(KEY, SECRET)
    emu.set_latency(LONG_LATENCY)
    with emu.serve() as base_url:
        async with (
            httpx.AsyncClient(base_url=base_url) as client,
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(lambda: client.post("msg/sendMsg.action", data=TEXT, headers=signed()))
            # Leave once the emulator has the call: cancelling closes the connection.
            await _until(lambda: len(emu.calls) == 1)
            tasks.cancel_scope.cancel()
        # Leaving the block stops the server, which waits for the handler to end (or,
        # past uvicorn's grace period, cancels it with an ERROR and a traceback).
    assert [call.code for call in emu.calls] == [200]
    assert len(emu.messages) == 1
    assert _errors(caplog) == []


async def test_a_client_timing_out_during_the_latency_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """httpx's read timeout against a long latency: ReadTimeout, the call recorded, no ERROR."""
    emu = NimEmulator(KEY, SECRET)
    emu.set_latency(LONG_LATENCY)
    with emu.serve() as base_url:
        # The read timeout only starts once the request is written, and this one is
        # long enough for the server to have read the body before the client closes.
        async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(5, read=1)) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("msg/sendMsg.action", data=TEXT, headers=signed())
    assert [call.code for call in emu.calls] == [200]
    assert _errors(caplog) == []


async def test_a_client_leaving_mid_body_is_not_recorded_and_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body cut off by the client never arrived: nothing is recorded and nothing is logged."""
    emu = NimEmulator(KEY, SECRET)
    with emu.serve() as base_url:
        host, port = httpx.URL(base_url).host, httpx.URL(base_url).port
        assert port is not None
        head = "".join(f"{name}: {value}\r\n" for name, value in signed().items())
        with socket.create_connection((host, port), timeout=RECORD_WAIT) as sock:
            sock.sendall(
                (
                    "POST /nimserver/msg/sendMsg.action HTTP/1.1\r\nHost: nim\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: 1000\r\nExpect: 100-continue\r\n{head}\r\n"
                ).encode()
            )
            # uvicorn sends "100 Continue" when the app starts reading the body.
            assert sock.recv(64).startswith(b"HTTP/1.1 100")
            sock.sendall(b"from=alice&to=")
    assert emu.calls == []
    assert _errors(caplog) == []


async def test_serve_logs_the_summary_when_it_stops(caplog: pytest.LogCaptureFixture) -> None:
    """Leaving serve()'s block logs summary() at INFO on the "nim_async.testing" logger."""
    emu = NimEmulator(KEY, SECRET)
    with caplog.at_level(logging.INFO, logger="nim_async.testing"), emu.serve() as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            await client.post("msg/sendMsg.action", data=TEXT, headers=signed())
    assert [r.getMessage() for r in caplog.records if r.name == "nim_async.testing"] == [
        emu.summary()
    ]


def test_the_emulator_command_prints_its_summary_when_stopped() -> None:
    """`nim-async emulator` prints one summary line on SIGTERM: total, by code, and 416s."""
    port = free_port()
    command = "from nim_async._cli import main; main()"
    env = os.environ | {"NIM_APP_KEY": KEY, "NIM_APP_SECRET": SECRET}
    server = subprocess.Popen(
        [sys.executable, "-c", command, "emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert listens_soon(port, seconds=20, interval=0.05), "the emulator did not start"
        url = f"http://127.0.0.1:{port}/nimserver/msg/sendMsg.action"
        with httpx.Client() as client:
            assert client.post(url, data=TEXT, headers=signed()).json()["code"] == 200
            bad = client.post(url, data=TEXT | {"ope": "9"}, headers=signed())
            assert bad.json()["code"] == 414
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=20)
    assert (
        out.splitlines()[-1]
        == "NIM emulator answered 2 calls: code 200 ×1, code 414 ×1; 0 blocked (416)"
    )
