"""A feature whose extra is not installed says which extra to install, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python(
    script: str, *, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter from the checkout, its output captured."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
        env=env,
    )


# ``sys.modules[name] = None`` makes ``import name`` raise ModuleNotFoundError, as an
# uninstalled package does, so the real import path runs.
_SCRIPT = """
import sys
sys.modules["redis"] = None
sys.modules["redis.asyncio"] = None
import nim_async as nim
try:
    {use}
except ModuleNotFoundError as error:
    print(error)
    print(type(error.__cause__).__name__)
"""


@pytest.mark.parametrize(
    ("feature", "use"),
    [
        ("RedisLimiter", 'nim.RedisLimiter("redis://127.0.0.1:1")'),
        ("RedisJournal", 'nim.RedisJournal("redis://127.0.0.1:1", "job")'),
    ],
)
def test_a_missing_redis_extra_is_named(feature: str, use: str) -> None:
    """Without redis-py, the Redis features name the extra and how to install it."""
    done = _python(_SCRIPT.format(use=use), check=True)
    message, cause = done.stdout.splitlines()
    assert message == (
        f"{feature} needs the 'redis' extra: pip install 'nim-async[redis]' "
        "(from a checkout: pip install '.[redis]'); missing module: 'redis'"
    )
    assert cause == "ModuleNotFoundError"


def test_callback_dependency_without_starlette_names_the_extra() -> None:
    """Without Starlette (FastAPI brings it), the dependency says which extra has it."""
    script = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "import nim_async as nim\n"
        "try:\n"
        "    nim.callback_dependency('secret')\n"
        "except ModuleNotFoundError as error:\n"
        "    print(error)\n"
    )
    done = _python(script, check=True)
    assert done.stdout.startswith(
        "callback_dependency needs the 'emulator' extra: pip install 'nim-async[emulator]'"
    )


def test_a_missing_module_the_extra_does_not_provide_goes_through_unchanged() -> None:
    """Only the extra's own modules are renamed: another missing module is reported as itself."""
    from nim_async._extras import needs_extra

    with pytest.raises(ModuleNotFoundError) as caught, needs_extra("X", "x", frozenset({"x"})):
        import no_such_module_anywhere  # type: ignore[import-not-found]  # noqa: F401
    assert caught.value.name == "no_such_module_anywhere"
    assert caught.value.__cause__ is None


def test_the_command_line_names_the_redis_extra_for_redis() -> None:
    """``nim-async send --redis URL`` without redis-py: exit 2 and the extra named, no traceback."""
    script = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "sys.modules['redis.asyncio'] = None\n"
        "from nim_async._cli import main\n"
        "main(['send', 'alice', 'bob', 'hi', '--redis', 'redis://127.0.0.1:1'])\n"
    )
    done = _python(script, env={"NIM_APP_KEY": "key", "NIM_APP_SECRET": "secret", "PATH": ""})
    assert done.returncode == 2, done.stderr
    assert "--redis: RedisLimiter needs the 'redis' extra" in done.stderr
    assert "Traceback" not in done.stderr
