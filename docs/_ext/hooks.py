"""MkDocs hook: the API reference must show every exported name, and every member whole.

The reference pages list their objects by hand, grouped by topic; this fails
the (strict) build when

- a name in ``nim_async.__all__`` or ``nim_async.testing.__all__`` has no entry,
  so a new export cannot be left out;
- a public member of an exported class (its own or inherited from a base of
  the package) has no entry;
- a member of an exported class is rendered without its signature or without
  a docstring;
- a method is an attribute bound to a function defined elsewhere
  (``upload = _other.upload``), which the reference can only show as an
  attribute with neither signature nor docstring.

The package is read statically with griffe, with the extensions mkdocs.yml
gives mkdocstrings, so the members expected are the members rendered.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any

import griffe

log = logging.getLogger("mkdocs.hooks.api_reference")

# module file -> (reference page, the dotted prefix of its anchors)
_EXPORTS = {
    "nim_async/__init__.py": ("reference/nim_async.md", "nim_async"),
    "nim_async/testing/__init__.py": ("reference/testing.md", "nim_async.testing"),
    "nim_async/testing/pytest_plugin.py": (
        "reference/testing.md",
        "nim_async.testing.pytest_plugin",
    ),
}
# The constructor is the class's own signature (merge_init_into_class).
_NOT_MEMBERS = {"__init__", "__new__"}

_OBJECT = re.compile(r'<div class="doc doc-object doc-\w+">\s*<h\d id="([^"]+)"')
_CONTENTS = re.compile(r'<div class="doc doc-contents[^"]*">\s*<p>(.*?)</p>', re.S)


def _all(path: Path) -> list[str]:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return list(ast.literal_eval(node.value))  # type: ignore[arg-type]
    return []


def _rendered(html: str) -> dict[str, str]:
    """Each rendered object's anchor -> its own HTML, up to the next object's."""
    found = list(_OBJECT.finditer(html))
    objects = {}
    for match, following in zip(found, [*found[1:], None], strict=True):
        end = following.start() if following is not None else len(html)
        objects[match.group(1)] = html[match.start() : end]
    return objects


def _package(config: Any) -> griffe.Module:
    """nim_async as mkdocstrings loads it: the same search path and extensions."""
    root = Path(config["config_file_path"]).parent
    python = config["plugins"]["mkdocstrings"].config["handlers"]["python"]
    options = python.get("options", {})
    extensions = [
        str(root / spec) if isinstance(spec, str) and spec.startswith("docs/") else spec
        for spec in options.get("extensions", [])
    ]
    return griffe.load(
        "nim_async",
        search_paths=[str(root / path) for path in python.get("paths", ["."])],
        extensions=griffe.load_extensions(*extensions),
        docstring_parser="google",
    )


def _final(obj: griffe.Object | griffe.Alias) -> griffe.Object | None:
    try:
        return obj.final_target if obj.is_alias else obj  # type: ignore[return-value]
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _alias_of_callable(member: griffe.Object) -> str | None:
    """``upload = _other.upload`` in a class body: the function it is bound to."""
    value = member.value if member.is_attribute else None
    if not isinstance(value, griffe.ExprName | griffe.ExprAttribute):
        return None
    try:
        target = member.modules_collection[value.canonical_path]
    except KeyError:
        return None
    target = _final(target)
    if target is not None and (target.is_function or target.is_class):
        return target.path
    return None


def _problems(anchor: str, chunk: str) -> list[str]:
    problems = []
    if 'class="doc-signature' not in chunk:
        problems.append(f"{anchor} is rendered without a signature")
    summary = _CONTENTS.search(chunk)
    documented = summary is not None and re.sub(r"<[^>]+>", "", summary.group(1)).strip()
    if not documented:
        problems.append(f"{anchor} is rendered without a docstring")
    return problems


def _check_classes(html: str, prefix: str, names: list[str], pkg: griffe.Module) -> list[str]:
    rendered = _rendered(html)
    module = pkg.get_member(prefix.removeprefix("nim_async.")) if prefix != "nim_async" else pkg
    problems = []
    for name in names:
        cls = _final(module[name]) if name in module.members else None
        if cls is None or not cls.is_class:
            continue
        for member_name, member in cls.all_members.items():
            if member_name in _NOT_MEMBERS or not member.is_public:
                continue
            anchor = f"{prefix}.{name}.{member_name}"
            target = _final(member)
            bound = _alias_of_callable(target) if target is not None else None
            if bound is not None:
                problems.append(
                    f"{anchor} is an attribute bound to {bound}: define the method in the class"
                )
            if anchor not in rendered:
                problems.append(f"{anchor} is public but not rendered")
        for anchor, chunk in rendered.items():
            if anchor.startswith(f"{prefix}.{name}."):
                problems.extend(_problems(anchor, chunk))
    return problems


_package_cache: dict[str, griffe.Module] = {}


def on_config(config: Any, **kwargs: Any) -> Any:
    _package_cache.clear()
    return config


def on_page_content(html: str, page: Any, config: Any, **kwargs: Any) -> str:
    root = Path(config["config_file_path"]).parent
    for source, (doc, prefix) in _EXPORTS.items():
        if page.file.src_uri != doc:
            continue
        names = _all(root / source)
        for name in names:
            if f'id="{prefix}.{name}"' not in html:
                log.warning("%s: %s.%s is exported but not documented", doc, prefix, name)
        if "pkg" not in _package_cache:
            _package_cache["pkg"] = _package(config)
        for problem in _check_classes(html, prefix, names, _package_cache["pkg"]):
            log.warning("%s: %s", doc, problem)
    return html
