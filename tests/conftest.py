"""Shared fixtures: an in-process NIM emulator and a client wired to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import nim_async as nim
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


@pytest.fixture
def emulator() -> NimEmulator:
    return NimEmulator(APP_KEY, APP_SECRET)


@pytest.fixture
async def client(emulator: NimEmulator) -> AsyncIterator[nim.NimClient]:
    async with nim.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url=BASE_URL,
        transport=emulator.transport(),
        rate_limits=None,
        retry=FAST_RETRY,
    ) as client:
        yield client
