"""The ``nim_emulator`` pytest fixture.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["nim_async.testing.pytest_plugin"]``.
It is not an auto-loaded ``pytest11`` plugin: that would make pytest load (and
assertion-rewrite) nim_async in every test run of every project that installs it.
"""

from __future__ import annotations

import pytest

from ._emulator import NimEmulator

__all__ = ["APP_KEY", "APP_SECRET", "nim_emulator"]

APP_KEY = "test-app-key"
APP_SECRET = "test-app-secret"


@pytest.fixture
def nim_emulator() -> NimEmulator:
    """A fresh `NimEmulator` for app key ``"test-app-key"`` and secret ``"test-app-secret"``.

    Every account and team exists and there are no rate limits; use
    ``register``/``add_team``, ``fail_next`` and friends to shape it, or build
    your own `NimEmulator` for accounts or limits.

    Returns:
        The emulator; ``transport()`` connects an httpx client to it.
    """
    try:
        import starlette  # noqa: F401  (the extra this fixture needs)
    except ImportError:  # pragma: no cover - depends on the installed extras
        pytest.fail("the nim_emulator fixture needs the extra: pip install 'nim-async[emulator]'")
    return NimEmulator(APP_KEY, APP_SECRET)
