"""The servers the benchmarks talk to, each in a process of its own, over loopback sockets.

- ``fixed``: a small HTTP/1.1 server on raw asyncio (no framework): every
  request, whatever its path, is read whole and answered ``FIXED_ANSWER`` with
  a ``Date`` header, after ``delay`` seconds. It costs the client nothing a
  real server would not, and costs little itself, so the client process is
  what a CPU row measures. With ``record`` 1 it also notes each request's
  arrival (``time.time()``, which processes of one machine share).
- ``emulator``: ``nim_async.testing.NimEmulator`` served by uvicorn, with the
  default rate limits scaled by ``scale`` (0: none) checked by the server
  (a breach is answered 416 and counted) and every answer ``latency`` late.

Either prints its base URL on the first stdout line, serves until a line (or
the end) comes on stdin, then prints one JSON line of what it counted:
``{"requests": N}``, with ``"arrivals"`` when recorded, and for the emulator
``"rate_limited"`` too. `serving`
does all of that from the client's side.

Run alone: ``python benchmarks/bench_servers.py fixed [DELAY [RECORD]]`` or
``python benchmarks/bench_servers.py emulator SCALE LATENCY``; Enter stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import APP_KEY, APP_SECRET

# What every NIM call of the benchmarks accepts: sendMsg reads ``data``, upload reads ``url``.
FIXED_ANSWER = json.dumps(
    {
        "code": 200,
        "data": {"msgid": 1, "timetag": 1, "antispam": False},
        "url": "http://nos.bench/file",
    },
    separators=(",", ":"),
).encode()
_START_TIMEOUT = 30.0  # seconds for a server process to print its URL


class Served:
    """A server process as its client sees it: ``url`` while it runs, ``counts`` after."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts: dict[str, Any] = {}


@contextlib.contextmanager
def serving(kind: str, *arguments: float) -> Iterator[Served]:
    """Start ``bench_servers.py kind arguments`` in its own process for a ``with`` block.

    Yields:
        The server: its base URL, and once the block has ended, its counts.

    Raises:
        RuntimeError: The server did not start, or did not report its counts.
    """
    process = subprocess.Popen(
        [sys.executable, __file__, kind, *map(str, arguments)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the {kind} server did not start")
        served = Served(url)
        yield served
        out, _ = process.communicate("stop\n", timeout=_START_TIMEOUT)
        served.counts = json.loads(out.strip().splitlines()[-1])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the fixed-answer server -----------------------------------------------------------------


class _Date:
    """The ``Date`` header's value, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode()
        return self._value


class _FixedAnswer(asyncio.Protocol):
    """One connection: reads requests (Content-Length or chunked bodies), answers each."""

    def __init__(self, delay: float, date: _Date, counts: dict[str, Any]) -> None:
        self._delay = delay
        self._date = date
        self._counts = counts
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (request := self._take_request()) is not None:
            self._answer(close=request)

    def _take_request(self) -> bool | None:
        """Remove one whole request from the buffer: whether it asks to close, None if partial."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buffer[:end]).lower()
        start = end + 4
        if b"transfer-encoding: chunked" in head:
            at = start
            while True:
                line_end = buffer.find(b"\r\n", at)
                if line_end < 0:
                    return None
                size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
                at = line_end + 2 + size + 2  # the chunk and its CRLF
                if len(buffer) < at:
                    return None
                if size == 0:
                    break
            del buffer[:at]
        else:
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : line_end if line_end >= 0 else len(head)])
            if len(buffer) < start + length:
                return None
            del buffer[: start + length]
        return b"connection: close" in head

    def _answer(self, *, close: bool) -> None:
        self._counts["requests"] += 1
        if "arrivals" in self._counts:
            self._counts["arrivals"].append(time.time())
        loop = asyncio.get_running_loop()
        response = b"".join(
            (
                b"HTTP/1.1 200 OK\r\nDate: ",
                self._date.value(time.time()),
                b"\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: ",
                str(len(FIXED_ANSWER)).encode(),
                b"\r\nConnection: close\r\n\r\n" if close else b"\r\n\r\n",
                FIXED_ANSWER,
            )
        )
        if self._delay:
            loop.call_later(self._delay, self._write, response, close)
        else:
            self._write(response, close)

    def _write(self, response: bytes, close: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(response)
        if close:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def _until_stopped(counts: dict[str, Any]) -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    # The client's process may have ended first (a stall run cut off): nobody reads this.
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(counts), flush=True)


async def _serve_fixed(delay: float, record: bool) -> None:
    counts: dict[str, Any] = {"requests": 0}
    if record:
        counts["arrivals"] = []
    date = _Date()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _FixedAnswer(delay, date, counts), "127.0.0.1", 0, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/nimserver/", flush=True)
    async with server:
        await _until_stopped(counts)


# --- the emulator ----------------------------------------------------------------------------


def _serve_emulator(scale: float, latency: float) -> None:
    import nim_async as nim
    from nim_async.testing import NimEmulator

    limits = nim.RateLimits.default().scaled(scale) if scale else None
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=limits)
    if latency:
        emulator.set_latency(latency)
    with emulator.serve() as url:
        print(url, flush=True)
        sys.stdin.readline()
    counts = {"requests": len(emulator.calls), "rate_limited": emulator.rate_limited}
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    kind, *numbers = sys.argv[1:]
    if kind == "fixed":
        delay = float(numbers[0]) if numbers else 0.0
        record = len(numbers) > 1 and float(numbers[1]) != 0
        asyncio.run(_serve_fixed(delay, record))
    elif kind == "emulator":
        _serve_emulator(float(numbers[0]), float(numbers[1]))
    else:
        sys.exit(f"unknown server {kind!r}: fixed or emulator")
