"""Without the ``emulator`` extra: importing nim_async.testing works, and using what needs
the extra raises one ModuleNotFoundError that says which extra to install.

Each test runs a fresh interpreter in which the extra's modules cannot be imported
(``sys.modules[name] = None`` makes ``import name`` raise ModuleNotFoundError, as an
uninstalled package does), so the real import path runs, with nothing cached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
HINT = "pip install 'nim-async[emulator]' (from a checkout: pip install '.[emulator]')"

# Run after the modules are blocked; {use} is what may fail, and the outcome is printed as JSON.
_SCRIPT = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None
from nim_async.testing import NimEmulator
emulator = NimEmulator("key", "secret")

def twice(use):
    try:
        use()
    except ModuleNotFoundError:
        pass
    use()

try:
    {use}
except ModuleNotFoundError as error:
    cause = error.__cause__
    print(json.dumps({{
        "message": str(error),
        "cause": type(cause).__name__ if cause is not None else None,
        "cause_name": getattr(cause, "name", None),
    }}))
else:
    print(json.dumps({{"message": None}}))
"""


def _run(blocked: list[str], use: str) -> dict[str, Any]:
    script = _SCRIPT.format(blocked=blocked, use=use)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome


def test_importing_nim_async_testing_needs_no_extra() -> None:
    """With none of the extra's modules, nim_async.testing and its pytest plugin import."""
    blocked = ["starlette", "python_multipart", "multipart", "uvicorn"]
    outcome = _run(blocked, "import nim_async.testing.pytest_plugin")
    assert outcome["message"] is None


def test_transport_without_starlette_names_the_extra() -> None:
    """transport() without Starlette raises ModuleNotFoundError naming the extra and starlette."""
    outcome = _run(["starlette"], "emulator.transport()")
    assert outcome["message"].startswith("nim_async.testing needs the 'emulator' extra: ")
    assert HINT in outcome["message"]
    assert "'starlette'" in outcome["message"]
    assert (outcome["cause"], outcome["cause_name"].split(".")[0]) == (
        "ModuleNotFoundError",
        "starlette",
    )


def test_the_app_without_python_multipart_names_the_extra() -> None:
    """Starlette imports python-multipart lazily; the emulator finds it missing at once."""
    outcome = _run(["python_multipart", "multipart"], "emulator.app")
    assert HINT in outcome["message"]
    assert "'multipart'" in outcome["message"]


def test_serving_without_uvicorn_names_the_extra() -> None:
    """serve() without uvicorn raises the same error, naming uvicorn, as its block is entered."""
    outcome = _run(["uvicorn"], "emulator.serve().__enter__()")
    assert HINT in outcome["message"]
    assert "'uvicorn'" in outcome["message"]
    assert outcome["cause_name"] == "uvicorn"


@pytest.mark.parametrize("use", ["twice(emulator.transport)", "twice(lambda: emulator.app)"])
def test_a_second_use_raises_the_same_error(use: str) -> None:
    """The failed import is not cached half-done: the next use says which extra is missing too."""
    outcome = _run(["starlette"], use)
    assert HINT in outcome["message"]
    assert "'starlette'" in outcome["message"]
