"""Shared fixtures: an in-process NIM emulator, a client wired to it, a redis-server.

Helpers that test modules import live in ``tests/_support.py``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator
from nim_async.testing._server import serve_in_thread

from ._cli_process import Arrivals
from ._support import APP_KEY, APP_SECRET, Wire, free_port, listens_soon, make_client

# The plugin users enable the same way; it provides the `nim_emulator` fixture.
pytest_plugins = ["nim_async.testing.pytest_plugin"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def emulator() -> NimEmulator:
    return NimEmulator(APP_KEY, APP_SECRET)


@pytest.fixture
async def client(emulator: NimEmulator) -> AsyncIterator[nim.NimClient]:
    async with make_client(emulator) as client:
        yield client


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A redis-server of our own on a free loopback port, for the session; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = (
            "redis-server is not on PATH, so the Redis limiter tests cannot run; "
            "install it (apt-get install redis-server; .ci/run does) "
            "or deselect them with -m 'not redis'"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        if not listens_soon(port, seconds=10, interval=0.02):
            pytest.fail("redis-server did not start within 10 s")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied before each test."""
    with socket.create_connection(("127.0.0.1", int(redis_server.rsplit(":", 1)[1][:-2]))) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        assert sock.recv(16).startswith(b"+OK")
    return redis_server


@pytest.fixture
def served(emulator: NimEmulator) -> Iterator[tuple[str, Arrivals]]:
    """The emulator on a loopback port: its base URL, and the requests that reached it."""
    arrivals = Arrivals(emulator.app)
    with serve_in_thread(arrivals) as base_url:
        yield base_url, arrivals


@pytest.fixture(params=["aiohttp", "httpcore"])
def wire(request: pytest.FixtureRequest) -> Wire:
    """The two transports a client meets over sockets: its default (aiohttp's
    pool) and httpx's own, which users may pass as ``transport=``."""
    if request.param == "httpcore":
        return {"transport": httpx.AsyncHTTPTransport()}
    return {}
