"""The documentation's runnable examples run as written.

The README's quick start, the endpoint tour of docs/guides/sending.md and the
bulk job of docs/guides/bulk-jobs.md are read from their pages and executed
against the emulator, exactly as a user would paste them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
SENDING = ROOT / "docs" / "guides" / "sending.md"
BULK_JOBS = ROOT / "docs" / "guides" / "bulk-jobs.md"


def _section_code(page: Path, heading: str) -> str:
    """The first python block under the ``## heading`` of ``page``."""
    text = page.read_text(encoding="utf-8")
    parts = text.split(f"\n## {heading}\n", 1)
    assert len(parts) == 2, f"no section {heading!r} in {page.name}"
    section = re.split(r"\n## ", parts[1], maxsplit=1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"no python block under {heading!r} in {page.name}"
    return match.group(1)


def _run(page: Path, heading: str) -> None:
    code = compile(_section_code(page, heading), str(page.relative_to(ROOT)), "exec")
    exec(code, {"__name__": "__main__"})


def test_quick_start_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's quick start sends, notifies, and shows a refusal before sending."""
    _run(README, "Quick start")
    out = capsys.readouterr().out
    assert re.search(r"^message \d+ stored at \d{13}$", out, re.MULTILINE)
    assert "refused before sending: body: must be JSON of at most 5000 characters" in out


def test_the_docs_quick_start_is_the_readmes() -> None:
    """The docs site's home page shows the same quick start as the README."""
    index = ROOT / "docs" / "index.md"
    assert _section_code(index, "Quick start") == _section_code(README, "Quick start")


def test_the_endpoint_tour_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The tour calls all eleven endpoints against the emulator without an error."""
    _run(SENDING, "Every endpoint in one runnable tour")
    out = capsys.readouterr().out
    assert "accepted 2 unregistered ['ghost'] ids 2" in out
    assert "uploaded True True" in out
    assert "clean-up task 32" in out
    assert re.search(r"^broadcast \d+ \(", out, re.MULTILINE)


def test_the_bulk_job_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The bulk example sends 12,000, resends the refused chunks, and raises nothing."""
    _run(BULK_JOBS, "A runnable example")
    out = capsys.readouterr().out
    assert "accepted 10,000, failed chunks 4" in out
    assert "resent 2,000; 0 chunks to check before resending" in out
