"""Helpers the test modules share: the test app, a client factory, loopback ports.

Test modules import from here, never from each other or from conftest.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from typing import Any

import httpx

import nim_async as nim
from nim_async.testing import NimEmulator

__all__ = [
    "APP_KEY",
    "APP_SECRET",
    "BASE_URL",
    "FAST_RETRY",
    "Wire",
    "china_midnight",
    "free_port",
    "listens_soon",
    "make_client",
    "past_nos_range",
]

APP_KEY = "test-app-key"
APP_SECRET = "test-app-secret-do-not-leak"
BASE_URL = "http://nim.test/nimserver/"

# Retries without waiting, so that tests of retries take no time.
FAST_RETRY = nim.RetryPolicy(backoff_base=0, jitter=False)
# "Today" for job/nos/del is the service's day, in China time.
CHINA = dt.timezone(dt.timedelta(hours=8))


def china_midnight() -> dt.datetime:
    """The start of today in China, read now (a run may cross midnight)."""
    return dt.datetime.now(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)


def past_nos_range() -> tuple[dt.datetime, dt.datetime]:
    """A two-day range ending an hour before today in China time, as job/nos/del requires."""
    end = china_midnight() - dt.timedelta(hours=1)
    return end - dt.timedelta(days=2), end


# make_client's keywords that pick a transport over real sockets (the `wire` fixture).
Wire = dict[str, Any]


def make_client(
    target: NimEmulator | httpx.AsyncBaseTransport | None = None, /, **overrides: Any
) -> nim.NimClient:
    """A NimClient of the test app, sending through an emulator or any transport.

    Without ``target`` it uses the client's default transport (aiohttp's pool),
    for ``base_url=`` a served emulator. Defaults: APP_KEY and APP_SECRET,
    BASE_URL, no client-side rate limits, a fresh ``LocalLimiter`` of its own
    (so no test shares a budget with another), FAST_RETRY. Every keyword
    (``app_key`` and ``app_secret`` included) replaces its default;
    ``limiter=None`` gives the process-wide limiter.
    """
    transport = target.transport() if isinstance(target, NimEmulator) else target
    options: dict[str, Any] = {
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "base_url": BASE_URL,
        "transport": transport,
        "rate_limits": None,
        "limiter": nim.LocalLimiter(),
        "retry": FAST_RETRY,
    }
    options |= overrides
    return nim.NimClient(options.pop("app_key"), options.pop("app_secret"), **options)


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
