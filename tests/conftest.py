"""Shared fixtures and helpers: an in-process NIM emulator, clients wired to it, ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

import nim_async as nim
from nim_async._limits import forget_local_budgets
from nim_async.testing import NimEmulator

# The plugin users enable the same way; it provides the `nim_emulator` fixture.
pytest_plugins = ["nim_async.testing.pytest_plugin"]

APP_KEY = "test-app-key"
APP_SECRET = "test-app-secret-do-not-leak"
BASE_URL = "http://nim.test/nimserver/"

# Retries without waiting, so that tests of retries take no time.
FAST_RETRY = nim.RetryPolicy(backoff_base=0, jitter=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_local_budgets() -> Iterator[None]:
    """The LocalLimiter's budget lives in the process; every test starts with an idle one."""
    forget_local_budgets()
    yield
    forget_local_budgets()


@pytest.fixture
def emulator() -> NimEmulator:
    return NimEmulator(APP_KEY, APP_SECRET)


def make_client(
    target: NimEmulator | httpx.AsyncBaseTransport | None = None, /, **overrides: Any
) -> nim.NimClient:
    """A NimClient of the test app, sending through an emulator or any transport.

    Without ``target`` it uses httpx's own transport, for ``base_url=`` a served
    emulator. Defaults: APP_KEY and APP_SECRET, BASE_URL, no client-side rate
    limits, FAST_RETRY. Every keyword (``app_key`` and ``app_secret`` included)
    replaces its default; a test that needs the library's default limits or
    retries passes them, e.g. ``retry=nim.RetryPolicy()``.
    """
    transport = target.transport() if isinstance(target, NimEmulator) else target
    options: dict[str, Any] = {
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "base_url": BASE_URL,
        "transport": transport,
        "rate_limits": None,
        "retry": FAST_RETRY,
    }
    options |= overrides
    return nim.NimClient(options.pop("app_key"), options.pop("app_secret"), **options)


@pytest.fixture
async def client(emulator: NimEmulator) -> AsyncIterator[nim.NimClient]:
    async with make_client(emulator) as client:
        yield client


def free_port() -> int:
    """A loopback port that nothing listens on (free when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def listens_soon(port: int, *, seconds: float, interval: float) -> bool:
    """True once a loopback connection to ``port`` succeeds; False after ``seconds`` of
    trying every ``interval``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(interval)


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
