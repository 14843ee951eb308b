"""Developer tasks. ``nox`` runs the default set: tests, lint, typecheck and docs.

The tests run against the built package (pip builds and installs a wheel, and
pytest's importlib mode imports it from site-packages, not from the checkout),
so a file left out of the wheel fails the tests.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "coverage", "lint", "typecheck", "docs"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True


@nox.session
@nox.parametrize("extra", ["core", "redis"])
def tests(session: nox.Session, extra: str) -> None:
    """Run every test once against the emulator, under coverage: without and with ``redis``.

    ``core`` installs no ``redis`` extra and runs every test that does not need
    it (the Redis tests are not collected, rather than skipped), which proves
    the core never needs the extra. ``redis`` installs it and runs the tests
    marked ``redis``; redis-server must be on PATH. The `coverage` session
    combines both runs' data.
    """
    if extra == "core":
        session.install(".[emulator,cli,tests]")
        session.run("coverage", "erase")
        selection = ["-m", "not redis", "--ignore=tests/test_redis_limiter.py"]
    else:
        session.install(".[emulator,cli,redis,tests]")
        selection = ["-m", "redis"]
    # The pytest script, not `-m pytest`: `-m` would put the checkout first on sys.path.
    pytest = str(Path(session.bin) / "pytest")
    # Two workers (pytest-xdist): most tests wait on sockets, timers and child
    # processes, so two halve the run on a 2-core machine.
    session.run("coverage", "run", pytest, "-n", "2", *selection, *session.posargs)


@nox.session
def coverage(session: nox.Session) -> None:
    """Combine the coverage of both `tests` runs; fail under 90% branch coverage."""
    session.install("coverage[toml]>=7.10")
    session.run("coverage", "combine", success_codes=[0, 1])
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install(".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy --strict, and the public API as users call it."""
    session.install("-e", ".[emulator,cli,redis,tests,typecheck]")
    session.run("mypy", "nim_async", "tests/typing")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs.yml, docs/) into .nox/docs/site, then test it.

    mkdocstrings reads the API reference from the docstrings (Google style); a
    docstring griffe cannot match to its signature, a broken link, an exported
    name missing from the reference, or a member of an exported class shown
    without its signature or docstring fails the build (warnings are errors).
    The command-line page runs the ``nim-async`` parser, hence the ``cli``
    extra. Then docs/_ext/test_built_site.py reads the built HTML.
    """
    session.install(".[docs,cli]")
    # Material's notice about its successor is not a warning about these docs.
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    # Into .nox/ (ignored by git), not the checkout's site/.
    site = Path(session.virtualenv.location) / "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site), *session.posargs)
    # The pytest script, not `-m pytest`: `-m` would put the checkout first on sys.path.
    pytest = str(Path(session.bin) / "pytest")
    session.run(
        pytest,
        "-p",
        "no:cacheprovider",
        "docs/_ext/test_built_site.py",
        env={"NIM_ASYNC_SITE": str(site)},
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark (benchmarks/run_all.py): one table, printed and written with a plot.

    Writes benchmarks/results/bench.md and bench.png, and fails when a goal in
    the table is missed. Not a default session: the correctness suite asserts
    none of these figures. redis-server must be on PATH for the RedisLimiter
    rows. ``nox -s bench -- --only cpu`` runs one section and writes nothing.
    """
    session.install(".[emulator,redis,bench]")
    session.run("python", "benchmarks/run_all.py", *session.posargs)
