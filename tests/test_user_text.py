"""What users read speaks of the product, never of how it was built.

README.md, the documentation pages, the examples, the package's docstrings and
string literals (what ``help()``, the API reference, errors and log lines show)
and the command line's ``--help`` cite NetEase's documents and SDKs by name.
They never point at internal notes (a design file, a facts file, "the seeds"),
issues, rounds of work or sessions. Comments in the package are for its
maintainers and are not checked.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import nim_async

ROOT = Path(__file__).parent.parent
PACKAGE = Path(nim_async.__file__).parent

# Each pattern names what it catches; word boundaries keep ordinary English
# ("a round trip", "rounded up", "background", "issue a request") out of it.
INTERNAL = [
    ("the seed documents", re.compile(r"\bseed(?:s|'s|s')?\b(?!-)", re.IGNORECASE)),
    ("a design file", re.compile(r"\bDESIGN\b|\bdesign\.md\b|\bdesign doc(?:ument)?\b", re.I)),
    ("the facts file", re.compile(r"\bfacts? (?:file|sheet)\b|\(facts\b|\bfacts?[,:] ?\"", re.I)),
    ("an issue number", re.compile(r"\bissues? #?\d+|(?<![\w&/#])#\d+\b", re.IGNORECASE)),
    (
        "a round of work",
        re.compile(
            r"\b(?:this|that|next|last|previous|earlier|later|first|second|third|fourth)"
            r" round\b(?![- ]trips?\b)|\bround (?:\d+|one|two|three|four)\b",
            re.IGNORECASE,
        ),
    ),
    ("a work session", re.compile(r"\bthis session\b(?!'s)|\bwork(?:ing)? session\b", re.I)),
    ("a work item", re.compile(r"\bwork items?\b|\bwork history\b|\bthe brief\b", re.I)),
    ("a slice of work", re.compile(r"\b(?:first|second|this|next) slice\b", re.IGNORECASE)),
    ("an acceptance check", re.compile(r"\bacceptance (?:checks?|tests?|criteria)\b", re.I)),
    ("the time a text was asked for", re.compile(r"\bwhen this \w+ was asked for\b", re.I)),
]


def _offences(text: str, first_line: int = 1) -> Iterator[tuple[int, str, str]]:
    """(line, what, the line's text) for every internal reference in ``text``, once a line."""
    lines = text.splitlines()
    found: set[tuple[int, str]] = set()
    for name, pattern in INTERNAL:
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start())
            if (line, name) not in found:
                found.add((line, name))
                yield first_line + line, name, lines[line].strip()


def _documents() -> list[Path]:
    found = [ROOT / "README.md"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    found += sorted(path for path in (ROOT / "examples").rglob("*") if _is_text(path))
    return found


def _is_text(path: Path) -> bool:
    return path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def _strings(source: str) -> Iterator[tuple[int, str]]:
    """(line, value) of every string literal and docstring: what users can see.

    Comments are not in the syntax tree, so they are never checked.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _name(path: Path) -> str:
    for base in (ROOT, PACKAGE.parent):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return str(path)  # pragma: no cover


def _report(where: str, offences: list[tuple[int, str, str]]) -> str:
    lines = [f"{where}:{line}: {what}: {text}" for line, what, text in offences]
    return "internal references in user-facing text:\n" + "\n".join(lines)


@pytest.mark.parametrize("path", _documents(), ids=_name)
def test_documents_speak_only_of_the_product(path: Path) -> None:
    """README.md, docs/ and examples/ name NetEase's documents, never internal work."""
    offences = list(_offences(path.read_text(encoding="utf-8")))
    assert not offences, _report(_name(path), offences)


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_docstrings_and_strings_speak_only_of_the_product(path: Path) -> None:
    """Docstrings, messages and every other string literal of the package likewise."""
    offences = [
        offence
        for line, value in _strings(path.read_text(encoding="utf-8"))
        for offence in _offences(value, line)
    ]
    assert not offences, _report(_name(path), offences)


def _help_texts() -> Iterator[tuple[str, str]]:
    from nim_async._cli import _parser

    parser = _parser()
    yield "nim-async --help", parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, subparser in action.choices.items():
                yield f"nim-async {command} --help", subparser.format_help()


def test_the_command_line_help_speaks_only_of_the_product() -> None:
    """``nim-async --help`` and every subcommand's ``--help`` likewise."""
    found = [
        (f"{command}, help line {line}", what, text)
        for command, help_text in _help_texts()
        for line, what, text in _offences(help_text)
    ]
    assert not found, "internal references in --help:\n" + "\n".join(
        f"{where}: {what}: {text}" for where, what, text in found
    )


@pytest.mark.parametrize(
    "text",
    [
        "one round trip per window",
        "the round-trip time",
        "rounded up",
        "every round trip",
        "in the background",
        "issue a request",
        "issues the call",
        "designed for services",
        "a random value",
        "[Benchmarks](#benchmarks)",
        "HTTP/1.1 with 100 connections",
        "the session of the sender and each recipient",
    ],
)
def test_ordinary_words_pass(text: str) -> None:
    """The patterns do not catch ordinary English."""
    assert not list(_offences(text))


@pytest.mark.parametrize(
    "text",
    [
        "the seeds' address",
        "seed 000",
        "seeds/003",
        "as the seed's table says",
        "issue 13's work",
        "see #12",
        "this round's checks",
        "DESIGN: 20 MB",
        "see DESIGN.md",
        '(facts, "Base URLs")',
        "the facts file's text",
        "done in this session",
        "a work item",
    ],
)
def test_internal_references_are_caught(text: str) -> None:
    """Each kind of internal reference is caught."""
    assert list(_offences(text))
