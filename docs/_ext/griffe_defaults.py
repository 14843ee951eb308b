"""A griffe extension: show every default as its value, never as a constant's name.

The package names its defaults (``timeout: float = DEFAULT_TIMEOUT``), as
httpx does; a reader of the reference wants the value (``timeout=10.0``). For
every parameter of every function, and every class attribute, a default that
names a module-level constant is replaced by that constant's value expression,
followed through re-exports and chains of constants (``DEFAULT_RETRY`` becomes
``RetryPolicy()``, ``_PLAN_DEFAULT`` becomes ``ActionLimits((Rate(100, 1),),
block=10)``). attrs' ``Factory(list)`` / ``Factory(dict)`` / ``Factory(set)``
become ``[]`` / ``{}`` / ``set()``.

A default that is a member of a private enum (a "not given" sentinel such as
``with_options``' own) has no value a caller could write: it is shown as
``...``, as stubs show a default, and the private type is dropped from the
parameter's annotation; the docstring says what "not given" means.

Runs after ``AttrsInit`` (mkdocs.yml lists it second), so the ``__init__`` it
writes for attrs classes is covered too. Loaded by mkdocs.yml; excluded from
the built site.
"""

from __future__ import annotations

from typing import Any

import griffe

_FACTORIES = {"list": "[]", "dict": "{}", "set": "set()", "tuple": "()"}
_ATTRS_FACTORY = {"attrs.Factory", "attr.Factory"}


def _lookup(collection: griffe.ModulesCollection, path: str) -> griffe.Object | None:
    try:
        found = collection[path]
        while found.is_alias:
            found = found.target
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return found  # type: ignore[no-any-return]


def _is_sentinel(target: griffe.Object) -> bool:
    # A member of a private class (an enum of "not given" markers).
    parent = target.parent
    return bool(parent is not None and parent.is_class and parent.name.startswith("_"))


def _value(
    default: str | griffe.Expr | None, collection: griffe.ModulesCollection, depth: int = 0
) -> str | griffe.Expr | None:
    """The default as a reader should see it: a value, not a name."""
    if depth > 10:  # a cycle of constants; leave it as it is
        return default
    if isinstance(default, griffe.ExprCall):
        function = default.function
        if isinstance(function, griffe.Expr) and function.canonical_path in _ATTRS_FACTORY:
            factory = str(default.arguments[0]) if default.arguments else ""
            return _FACTORIES.get(factory, f"{factory}()")
        return default
    if not isinstance(default, griffe.ExprName | griffe.ExprAttribute):
        return default
    target = _lookup(collection, default.canonical_path)
    if target is None or not target.is_attribute:
        return default  # a function or class (``time.time``) is its own value
    if _is_sentinel(target):
        return "..."
    if target.parent is not None and target.parent.is_module and target.value is not None:
        return _value(target.value, collection, depth + 1)
    return default


def _without_private(annotation: str | griffe.Expr | None) -> str | griffe.Expr | None:
    """``float | _Keep | None`` → ``float | None``: drop private names from a union."""
    if isinstance(annotation, griffe.ExprName) and annotation.name.startswith("_"):
        return None
    if isinstance(annotation, griffe.ExprBinOp) and annotation.operator == "|":
        left = _without_private(annotation.left)
        right = _without_private(annotation.right)
        if left is None or right is None:
            return right if left is None else left
        return griffe.ExprBinOp(left, "|", right)
    return annotation


def _fix_function(func: griffe.Function, collection: griffe.ModulesCollection) -> None:
    for parameter in func.parameters:
        value = _value(parameter.default, collection)
        if value is not parameter.default:
            if value == "...":
                parameter.annotation = _without_private(parameter.annotation)
            parameter.default = value


def _walk(obj: griffe.Module | griffe.Class, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    collection = obj.modules_collection
    for member in list(obj.members.values()):
        if member.is_alias:
            continue
        if member.is_module or member.is_class:
            _walk(member, seen)  # type: ignore[arg-type]
        elif member.is_function:
            _fix_function(member, collection)  # type: ignore[arg-type]
        elif member.is_attribute and obj.is_class:
            member.value = _value(member.value, collection)


class LiteralDefaults(griffe.Extension):
    """Replace every default that names a constant with the constant's value."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())
