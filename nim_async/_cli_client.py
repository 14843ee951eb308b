"""What every ``nim-async`` command shares: the exit statuses, `_Exit`, the credentials, and
the client with its rate-limit budget (a limiter file by default, or Redis).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ._base import DEFAULT_BATCH_SIZE, DEFAULT_TIMEOUT
from ._client import CHINA_URL, NimClient
from ._errors import ConfigurationError
from ._limits import Limiter, LocalLimiter

__all__ = [
    "_FAILED",
    "_MAYBE_SENT",
    "_USAGE",
    "_Exit",
    "_client",
    "add_limiter_options",
    "default_limiter_file",
]

# Exit statuses: 1 is the server's or the network's answer, 2 is the user's
# own input (arguments, settings, credentials, files), as argparse's 2; 3 a
# batch whose only failures may have been sent and could not be settled.
_FAILED = 1
_USAGE = 2
_MAYBE_SENT = 3


class _Exit(Exception):
    """End the command with ``message`` on stderr and exit ``status``.

    Raised inside the running job and turned into ``SystemExit`` by ``main``,
    outside the event loop.
    """

    def __init__(self, message: str, status: int = _USAGE) -> None:
        super().__init__(message)
        self.status = status


def default_limiter_file() -> Path:
    """``$XDG_CACHE_HOME/nim-async/limits.sqlite3`` (``~/.cache/...`` without it).

    One file per user and host: every ``nim-async`` run there shares its budget,
    and a run started right after another sees the calls the other made.
    """
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "nim-async" / "limits.sqlite3"


def add_limiter_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--limiter-file`` and ``--redis`` (one or the other) to a sending command."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--limiter-file",
        metavar="FILE",
        help="keep the rate-limit windows in this SQLite file, shared by every process "
        f"on this host that uses it (default: {default_limiter_file()})",
    )
    where.add_argument(
        "--redis",
        metavar="URL",
        help="keep the rate-limit windows in Redis instead, shared by every host "
        "(needs the redis extra)",
    )


def _credentials() -> tuple[str, str]:
    try:
        return os.environ["NIM_APP_KEY"], os.environ["NIM_APP_SECRET"]
    except KeyError as missing:
        raise _Exit(f"set {missing.args[0]} in the environment") from None


def _limiter(args: argparse.Namespace) -> Limiter:
    redis = getattr(args, "redis", None)
    if redis is not None:
        from ._redis import RedisLimiter

        try:
            return RedisLimiter(redis)
        except ModuleNotFoundError as missing:
            # Its message names the extra to install; a usage error, not a traceback.
            raise _Exit(f"--redis: {missing}", _USAGE) from None
    path = getattr(args, "limiter_file", None)
    if path is None:
        default = default_limiter_file()
        try:
            default.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _Exit(
                f"cannot create {default.parent} for the limiter file: "
                f"{error.strerror or error}; choose one with --limiter-file or --redis"
            ) from None
        path = str(default)
    try:
        return LocalLimiter(path=path)
    except ConfigurationError as error:
        raise _Exit(f"--limiter-file: {error}") from None


def _client(args: argparse.Namespace) -> NimClient:
    app_key, app_secret = _credentials()
    timeout = getattr(args, "timeout", None)
    batch_size = getattr(args, "batch_size", None)
    return NimClient(
        app_key,
        app_secret,
        base_url=os.environ.get("NIM_BASE_URL", CHINA_URL),
        limiter=_limiter(args),
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
    )
