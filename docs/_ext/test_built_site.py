"""The built documentation site shows the API as users call it.

Run by ``nox -s docs`` right after ``mkdocs build --strict``, on the HTML it
built: ``NIM_ASYNC_SITE=<site dir> pytest docs/_ext/test_built_site.py``.
Not collected by the ``tests`` session (it lives outside ``tests/``); without
a built site every test fails rather than skips.
"""

from __future__ import annotations

import argparse
import html
import inspect
import os
import re
from pathlib import Path

import pytest

import nim_async
from nim_async._cli import _parser

_OBJECT = re.compile(r'<div class="doc doc-object doc-\w+">\s*<h\d id="([^"]+)"')
_SIGNATURE = re.compile(r'<div class="doc-signature highlight">(.*?)</div>', re.S)
_TOC_LINK = re.compile(r'<a href="#([^"]+)" class="md-nav__link">')
# A default written as a constant's name: "= DEFAULT_TIMEOUT", "= _POLL_INTERVAL".
_CONSTANT_DEFAULT = re.compile(r"=\s*_?[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")


def _public(kind: type) -> list[str]:
    return sorted(
        name
        for name, value in inspect.getmembers(nim_async.NimClient)
        if not name.startswith("_") and isinstance(value, kind)
    )


_METHODS = sorted(
    name
    for name, value in inspect.getmembers(nim_async.NimClient, inspect.isfunction)
    if not name.startswith("_")
)
_PROPERTIES = _public(property)


def _text(fragment: str) -> str:
    """The words of an HTML fragment, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def _summary(obj: object) -> str:
    """The first line of a docstring as it reads once rendered (no ``code`` marks)."""
    first = (inspect.getdoc(obj) or "").strip().splitlines()[0]
    return " ".join(first.replace("`", "").split())


@pytest.fixture(scope="module")
def site() -> Path:
    location = os.environ.get("NIM_ASYNC_SITE")
    if not location:
        pytest.fail("set NIM_ASYNC_SITE to the directory `mkdocs build` wrote", pytrace=False)
    site = Path(location)
    if not (site / "reference" / "nim_async" / "index.html").is_file():
        pytest.fail(f"{site} holds no built site: run mkdocs build first", pytrace=False)
    return site


@pytest.fixture(scope="module")
def reference(site: Path) -> str:
    return (site / "reference" / "nim_async" / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def objects(reference: str) -> dict[str, str]:
    """Each rendered object's anchor -> its own HTML, up to the next object's."""
    found = list(_OBJECT.finditer(reference))
    ends = [match.start() for match in found[1:]] + [len(reference)]
    pairs = zip(found, ends, strict=True)
    return {match.group(1): reference[match.start() : end] for match, end in pairs}


def _entry(objects: dict[str, str], name: str) -> tuple[str, str]:
    anchor = f"nim_async.NimClient.{name}"
    assert anchor in objects, f"{anchor} has no heading"
    chunk = objects[anchor]
    signature = _SIGNATURE.search(chunk)
    assert signature is not None, f"{anchor} is shown without a signature"
    return _text(signature.group(1)), _text(chunk[signature.end() :])


def test_the_client_has_methods_to_check() -> None:
    """Introspection finds the endpoints and the inherited lifecycle methods."""
    assert {"send_msg", "upload", "query_session_msg", "aclose", "with_options"} <= set(_METHODS)


@pytest.mark.parametrize("name", _METHODS)
def test_every_public_method_of_the_client_has_its_signature_and_docstring(
    objects: dict[str, str], name: str
) -> None:
    """A heading, the signature of a call, and the docstring's first line."""
    signature, contents = _entry(objects, name)
    assert signature.startswith(f"{name}("), signature
    assert _summary(getattr(nim_async.NimClient, name)) in contents


@pytest.mark.parametrize("name", _PROPERTIES)
def test_every_property_of_the_client_has_its_type_and_docstring(
    objects: dict[str, str], name: str
) -> None:
    """A heading, ``name: type``, and the docstring's first line."""
    signature, contents = _entry(objects, name)
    assert signature.startswith(f"{name}:"), signature
    assert _summary(getattr(nim_async.NimClient, name)) in contents


@pytest.mark.parametrize("name", ["with_options", "limiter_stats", "aclose"])
def test_the_members_inherited_from_the_base_class_are_shown(
    objects: dict[str, str], name: str
) -> None:
    """The lifecycle and the per-request options, defined on the base class, are shown."""
    signature, _ = _entry(objects, name)
    assert signature.startswith(f"{name}(")


def test_no_signature_shows_a_constant_name_as_a_default(site: Path) -> None:
    """Defaults read ``timeout=10.0``, never ``timeout=DEFAULT_TIMEOUT``."""
    shown = []
    for page in sorted((site / "reference").glob("*/index.html")):
        for signature in _SIGNATURE.findall(page.read_text(encoding="utf-8")):
            text = _text(signature)
            if _CONSTANT_DEFAULT.search(text):
                shown.append(f"{page.parent.name}: {text}")
    assert not shown


def test_the_client_signature_shows_its_defaults_as_values(objects: dict[str, str]) -> None:
    """The constructor's defaults are values a reader can use."""
    signature = _text(_SIGNATURE.search(objects["nim_async.NimClient"]).group(1))  # type: ignore[union-attr]
    for default in ("timeout: float | httpx.Timeout = 10.0", "batch_size: int = 500"):
        assert default in signature


def test_the_table_of_contents_holds_no_dunder_plumbing(site: Path) -> None:
    """``__slots__``, ``__attrs_attrs__``, ``__repr__``... are not API and are not listed."""
    plumbing = ("__slots__", "__attrs_attrs__", "__repr__", "__reduce__", "__attrs_post_init__")
    listed = []
    for page in sorted((site / "reference").glob("*/index.html")):
        for anchor in _TOC_LINK.findall(page.read_text(encoding="utf-8")):
            if anchor.endswith(plumbing):
                listed.append(anchor)
    assert not listed


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    commands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    return {"": parser, **commands.choices}


@pytest.mark.parametrize("name", list(_commands()))
def test_the_command_line_page_shows_every_command_and_option(site: Path, name: str) -> None:
    """Each subcommand of ``nim-async`` has a section listing every one of its options."""
    page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    anchor = "nim-async" if not name else f"nim-async-{name}"
    start = page.index(f'id="{anchor}"')
    following = re.search(r"<h2 ", page[start + 1 :])
    end = start + 1 + following.start() if following is not None else len(page)
    section = _text(page[start:end])
    for action in _commands()[name]._actions:
        for option in action.option_strings:
            assert option in section, f"{option} of `nim-async {name}`"
    assert "exit status" in _text(page)
