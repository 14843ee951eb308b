"""Fixtures for your own tests: ``nim_emulator``, ``nim_client`` and the ``nim_accounts`` marker.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["nim_async.testing.pytest_plugin"]``.
It is not an auto-loaded ``pytest11`` plugin: that would make pytest load (and
assertion-rewrite) nim_async in every test run of every project that installs it.

``nim_client`` is an async fixture for tests run by the anyio pytest plugin
(``@pytest.mark.anyio``), which runs it in the test's event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import nim_async

from ._emulator import NimEmulator
from ._extra import INSTALL_HINT

__all__ = ["APP_KEY", "APP_SECRET", "BASE_URL", "nim_client", "nim_emulator"]

APP_KEY = "test-app-key"
APP_SECRET = "test-app-secret"
BASE_URL = "http://nim.test/nimserver/"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``nim_accounts`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "nim_accounts(*accids): the accounts nim_emulator knows; any other accid gets 404",
    )


@pytest.fixture
def nim_emulator(request: pytest.FixtureRequest) -> NimEmulator:
    """A fresh `NimEmulator` for app key ``"test-app-key"`` and secret ``"test-app-secret"``.

    Every account and team exists and there are no rate limits, unless the test
    (or its class or module) is marked ``@pytest.mark.nim_accounts("alice", "bob")``:
    then only those accounts exist and any other accid gets 404 (the marker
    closest to the test wins). Use ``register``/``add_team``, ``fail_next`` and
    friends to shape it further, or build your own `NimEmulator` for rate limits.

    Returns:
        The emulator; ``transport()`` connects an httpx client to it.
    """
    try:
        import starlette  # noqa: F401  (the extra this fixture needs)
    except ImportError:  # pragma: no cover - depends on the installed extras
        pytest.fail(f"the nim_emulator fixture: {INSTALL_HINT}")
    marker = request.node.get_closest_marker("nim_accounts")
    accounts: tuple[str, ...] | None = None
    if marker is not None:
        accounts = marker.args
        wrong = [accid for accid in accounts if not isinstance(accid, str)]
        if wrong or marker.kwargs:
            pytest.fail(
                f"nim_accounts takes accids as strings, e.g. nim_accounts('alice', 'bob'); "
                f"got {marker}",
                pytrace=False,
            )
    return NimEmulator(APP_KEY, APP_SECRET, accounts=accounts)


@pytest.fixture
async def nim_client(
    nim_emulator: NimEmulator, anyio_backend: object
) -> AsyncIterator[nim_async.NimClient]:
    """A `nim_async.NimClient` of the test app that sends to ``nim_emulator`` in-process.

    Its base URL is ``"http://nim.test/nimserver/"``; it has the default rate
    limits and retry policy, and a fresh `nim_async.LocalLimiter` of its own, so
    no two tests share a budget (nor use the process-wide one). It is closed
    after the test. For tests the anyio pytest plugin runs (``@pytest.mark.anyio``).

    Yields:
        The open client.
    """
    del anyio_backend  # requested so that the anyio plugin runs this fixture in the test's loop
    async with nim_async.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url=BASE_URL,
        transport=nim_emulator.transport(),
        limiter=nim_async.LocalLimiter(),
    ) as client:
        yield client
