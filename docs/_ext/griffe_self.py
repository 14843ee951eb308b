"""A griffe extension: a method that returns its own instance's type says ``Self``.

``def with_options(self: _Client, ...) -> _Client``, with ``_Client`` a private
TypeVar bound to the base class, is how code before ``typing.Self`` spells
"returns the class it is called on". The reference would show the private
name; this shows ``-> Self`` and drops the annotation of ``self``. Loaded by
mkdocs.yml; excluded from the built site.
"""

from __future__ import annotations

from typing import Any

import griffe


def _is_typevar(name: griffe.ExprName) -> bool:
    try:
        target = name.parent.modules_collection[name.canonical_path]  # type: ignore[union-attr]
        while target.is_alias:
            target = target.target
    except (KeyError, AttributeError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    value = target.value if target.is_attribute else None
    return isinstance(value, griffe.ExprCall) and str(value.function).endswith("TypeVar")


def _fix(func: griffe.Function) -> None:
    parameters = list(func.parameters)
    if not parameters or parameters[0].name != "self":
        return
    annotation = parameters[0].annotation
    if not isinstance(annotation, griffe.ExprName) or not _is_typevar(annotation):
        return
    parameters[0].annotation = None
    if isinstance(func.returns, griffe.ExprName) and func.returns.name == annotation.name:
        func.returns = "Self"


def _walk(obj: griffe.Module | griffe.Class, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    for member in list(obj.members.values()):
        if member.is_alias:
            continue
        if member.is_module or member.is_class:
            _walk(member, seen)  # type: ignore[arg-type]
        elif member.is_function and obj.is_class:
            _fix(member)  # type: ignore[arg-type]


class SelfReturns(griffe.Extension):
    """Show ``-> Self`` where a method returns the type of ``self``."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())
