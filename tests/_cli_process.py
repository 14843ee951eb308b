"""Running ``nim-async`` as a real process against the emulator served on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ._support import APP_KEY, APP_SECRET

ROOT = Path(__file__).resolve().parent.parent
_MAIN = "from nim_async._cli import main; main()"


class Arrivals:
    """An ASGI wrapper that counts the requests that reached the server, before any answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            action = scope["path"].rsplit("/nimserver/", 1)[-1].removesuffix(".action")
            self.count[action] += 1
        await self.app(scope, receive, send)


def start(
    tmp_path: Path, base_url: str, *arguments: str, stdin: Any = None
) -> subprocess.Popen[str]:
    env = {
        "NIM_APP_KEY": APP_KEY,
        "NIM_APP_SECRET": APP_SECRET,
        "NIM_BASE_URL": base_url,
        "PATH": os.environ.get("PATH", ""),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    return subprocess.Popen(
        [sys.executable, "-c", _MAIN, *arguments],
        cwd=ROOT,
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)
