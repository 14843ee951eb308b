"""The README's quick start runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def _section_code(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"no python block under {heading!r}"
    return match.group(1)


def test_quick_start_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The quick start sends, notifies, and shows a refusal before sending."""
    exec(compile(_section_code("Quick start"), "README.md", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert re.search(r"^message \d+ stored at \d{13}$", out, re.MULTILINE)
    assert "refused before sending: body: must be JSON of at most 5000 characters" in out


def test_the_endpoint_tour_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The tour calls all eleven endpoints against the emulator without an error."""
    exec(
        compile(_section_code("Every endpoint in one runnable tour"), "README.md", "exec"),
        {"__name__": "__main__"},
    )
    out = capsys.readouterr().out
    assert "accepted 2 unregistered ['ghost'] ids 2" in out
    assert "uploaded True True" in out
    assert "clean-up task 32" in out
    assert re.search(r"^broadcast \d+ \(", out, re.MULTILINE)


def test_the_bulk_job_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The bulk example sends 12,000, resends the refused chunks, and raises nothing."""
    exec(
        compile(
            _section_code("Bulk jobs: any number of recipients, each accounted for once"),
            "README.md",
            "exec",
        ),
        {"__name__": "__main__"},
    )
    out = capsys.readouterr().out
    assert "accepted 10,000, failed chunks 4" in out
    assert "resent 2,000; 0 chunks to check before resending" in out
