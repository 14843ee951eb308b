"""Developer tasks. ``nox`` runs the default set: tests, lint and typecheck."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True


@nox.session
@nox.parametrize("extra", ["core", "redis"])
def tests(session: nox.Session, extra: str) -> None:
    """Run the tests against the emulator, without and with the ``redis`` extra.

    Without it, the Redis tests are not collected (rather than skipped), which
    proves the core never needs the extra. With it, redis-server must be on
    PATH, and branch coverage of the whole run must reach 90%.
    """
    if extra == "core":
        session.install("-e", ".[emulator,cli,tests]")
        session.run(
            "pytest", "-m", "not redis", "--ignore=tests/test_redis_limiter.py", *session.posargs
        )
        return
    session.install("-e", ".[emulator,cli,redis,tests]")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", success_codes=[0, 1])
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy --strict, and the public API as users call it."""
    session.install("-e", ".[emulator,cli,redis,tests,typecheck]")
    session.run("mypy", "nim_async", "tests/typing")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks in benchmarks/ and print their ratios against raw httpx."""
    session.install("-e", ".[emulator]")
    for script in sorted(Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)
