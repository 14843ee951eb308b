"""A griffe extension: the fixes the API reference needs to the package griffe loads.

``ApiReference`` walks a loaded package once, collecting its modules and
classes, then applies each fix below to all of them, one fix after another, in
this order (later fixes see what earlier ones did):

1. ``_attrs_init``: attrs classes get their generated ``__init__``;
2. ``_literal_defaults``: defaults are shown as values, not constants' names
   (including the defaults of the ``__init__`` that 1 writes);
3. ``_hide_undocumented_dunders``: a dunder is kept only if it has a docstring;
4. ``_self_returns``: ``-> Self`` where a method returns the type of ``self``;
5. ``_attributes_from_class_docstring``: an undocumented attribute gets its
   entry from the class docstring.

Loaded by mkdocs.yml; excluded from the built site.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import griffe

# --- attrs classes: their __init__ -------------------------------------------

_ATTRS_DECORATORS = {
    "attrs.frozen",
    "attrs.define",
    "attrs.mutable",
    "attr.s",
    "attr.attrs",
    "attr.frozen",
    "attr.define",
    "attr.mutable",
}
_ATTRS_FIELDS = {"attrs.field", "attr.ib", "attr.attrib", "attr.field"}


def _call_arguments(expr: object) -> dict[str, Any]:
    if not isinstance(expr, griffe.ExprCall):
        return {}
    return {arg.name: arg.value for arg in expr.arguments if isinstance(arg, griffe.ExprKeyword)}


def _attrs_decorator(cls: griffe.Class) -> griffe.Expr | None:
    for decorator in cls.decorators:
        value = decorator.value
        function = value.function if isinstance(value, griffe.ExprCall) else value
        if isinstance(function, griffe.Expr) and function.canonical_path in _ATTRS_DECORATORS:
            return value
    return None


def _attrs_parameters(cls: griffe.Class) -> list[griffe.Parameter]:
    class_kw_only = str(_call_arguments(_attrs_decorator(cls)).get("kw_only")) == "True"
    parameters = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        if "class-attribute" in member.labels and "instance-attribute" not in member.labels:
            continue  # ClassVar
        value = member.value
        field = (
            _call_arguments(value)
            if isinstance(value, griffe.ExprCall) and value.canonical_path in _ATTRS_FIELDS
            else None
        )
        if field is not None and str(field.get("init")) == "False":
            continue
        name = member.name.lstrip("_") or member.name
        if field is not None and "alias" in field:
            name = str(field["alias"]).strip("'\"")
        if field is None:
            default = value
        elif "default" in field:
            default = field["default"]
        elif "factory" in field:
            default = griffe.ExprCall(function=field["factory"], arguments=[])
        else:
            default = None
        if field is not None:
            # The field's entry shows its default (``max_attempts: int = 3``),
            # not the attrs.field(...) call that declares it.
            member.value = default
        kw_only = class_kw_only or (field is not None and str(field.get("kw_only")) == "True")
        parameters.append(
            griffe.Parameter(
                name,
                annotation=member.annotation,
                kind=griffe.ParameterKind.keyword_only
                if kw_only
                else griffe.ParameterKind.positional_or_keyword,
                default=default,
                docstring=member.docstring,
            )
        )
    return parameters


def _attrs_init(cls: griffe.Class) -> None:
    """Give an ``@attrs.frozen`` / ``@attrs.define`` class its ``__init__``.

    nim_async's value classes are attrs classes documented with ``Args:`` in the class
    docstring (STYLE.md). attrs writes ``__init__`` at import time, so griffe's static
    analysis sees no signature and warns that every documented parameter "does not
    appear in the function signature". This rebuilds the signature attrs generates,
    the way griffe's built-in dataclasses extension does for ``@dataclass``: annotated
    fields in order (bases first), minus ``init=False``, with a leading underscore
    stripped (attrs' private-name rule) or ``alias=`` used, keyword-only where asked.
    A field declared with ``attrs.field(...)`` shows its default as its value.
    """
    if "__init__" in cls.members or _attrs_decorator(cls) is None:
        return
    parameters: dict[str, griffe.Parameter] = {}
    try:
        mro = cls.mro()
    except ValueError:
        mro = []
    for parent in [*reversed(mro), cls]:
        if _attrs_decorator(parent) is not None:
            for parameter in _attrs_parameters(parent):
                parameters.pop(parameter.name, None)
                parameters[parameter.name] = parameter
    ordered = sorted(parameters.values(), key=lambda p: p.kind is griffe.ParameterKind.keyword_only)
    self = griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)
    cls.set_member(
        "__init__",
        griffe.Function(
            "__init__",
            lineno=0,
            endlineno=0,
            parent=cls,
            parameters=griffe.Parameters(self, *ordered),
            returns="None",
        ),
    )


# --- defaults as values -------------------------------------------------------

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


def _literal_function_defaults(func: griffe.Function, collection: griffe.ModulesCollection) -> None:
    for parameter in func.parameters:
        value = _value(parameter.default, collection)
        if value is not parameter.default:
            if value == "...":
                parameter.annotation = _without_private(parameter.annotation)
            parameter.default = value


def _literal_defaults(obj: griffe.Module | griffe.Class) -> None:
    """Show every default as its value, never as a constant's name.

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

    Runs after ``_attrs_init``, so the ``__init__`` it writes for attrs classes
    is covered too.
    """
    collection = obj.modules_collection
    for member in list(obj.members.values()):
        if member.is_alias:
            continue
        if member.is_function:
            _literal_function_defaults(member, collection)  # type: ignore[arg-type]
        elif member.is_attribute and obj.is_class:
            member.value = _value(member.value, collection)


# --- dunders: only the documented ones -----------------------------------------

_KEEP_DUNDERS = {"__init__", "__new__"}


def _hide_undocumented_dunders(cls: griffe.Class) -> None:
    """Drop every dunder without a docstring, but ``__init__``, from a class.

    griffe counts every ``__name__`` member as public, so ``filters: public``
    would list ``__slots__``, ``__attrs_attrs__``, ``__repr__`` and ``__reduce__``:
    machinery, not API. A dunder that is part of a class's API (``__aenter__``
    of a client used as ``async with``) says what it does in a docstring, and is
    shown; every other one is dropped from the loaded model, so it is neither
    rendered nor listed in the table of contents. (Dropped, not marked
    ``public = False``: the members of a class re-exported by ``__init__.py`` are
    aliases, which do not carry that mark over.) ``__init__`` stays: the class's
    signature comes from it (``merge_init_into_class``).
    """
    for member in list(cls.members.values()):
        if member.is_alias:
            continue
        undocumented = member.is_special and not member.docstring
        if undocumented and member.name not in _KEEP_DUNDERS:
            cls.del_member(member.name)


# --- -> Self ------------------------------------------------------------------


def _is_typevar(name: griffe.ExprName) -> bool:
    try:
        target = name.parent.modules_collection[name.canonical_path]  # type: ignore[union-attr]
        while target.is_alias:
            target = target.target
    except (KeyError, AttributeError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    value = target.value if target.is_attribute else None
    return isinstance(value, griffe.ExprCall) and str(value.function).endswith("TypeVar")


def _self_return(func: griffe.Function) -> None:
    parameters = list(func.parameters)
    if not parameters or parameters[0].name != "self":
        return
    annotation = parameters[0].annotation
    if not isinstance(annotation, griffe.ExprName) or not _is_typevar(annotation):
        return
    parameters[0].annotation = None
    if isinstance(func.returns, griffe.ExprName) and func.returns.name == annotation.name:
        func.returns = "Self"


def _self_returns(cls: griffe.Class) -> None:
    """Show ``-> Self`` where a method returns its own instance's type.

    ``def with_options(self: _Client, ...) -> _Client``, with ``_Client`` a private
    TypeVar bound to the base class, is how code before ``typing.Self`` spells
    "returns the class it is called on". The reference would show the private
    name; this shows ``-> Self`` and drops the annotation of ``self``.
    """
    for member in list(cls.members.values()):
        if not member.is_alias and member.is_function:
            _self_return(member)  # type: ignore[arg-type]


# --- attributes documented in the class docstring -------------------------------

_SECTIONS = (griffe.DocstringSectionKind.attributes, griffe.DocstringSectionKind.parameters)


def _entries(cls: griffe.Class) -> dict[str, str]:
    if cls.docstring is None:
        return {}
    sections = griffe.parse_google(cls.docstring)
    entries: dict[str, str] = {}
    for kind in reversed(_SECTIONS):  # Attributes: wins over Args:
        for section in sections:
            if section.kind is kind:
                for item in section.value:
                    if item.description:
                        entries[item.name] = item.description
    return entries


def _description(cls: griffe.Class, name: str) -> str | None:
    try:
        bases = cls.mro()
    except ValueError:
        bases = []
    for owner in [cls, *bases]:
        inherited = owner.members.get(name) if owner is not cls else None
        if inherited is not None and not inherited.is_alias and inherited.docstring is not None:
            return inherited.docstring.value
        entries = _entries(owner)
        description = entries.get(name) or entries.get(name.lstrip("_"))
        if description:
            return description
    return None


def _attributes_from_class_docstring(cls: griffe.Class) -> None:
    """Give an attribute documented in its class's docstring that text.

    The package documents a class's fields where Google style puts them: in the
    class docstring, as ``Attributes:`` entries, or (attrs classes, whose
    constructor arguments are their fields) as ``Args:`` entries. The reference
    also lists every field as a member of its own, which would be blank: this
    gives each attribute without a docstring of its own the text of its entry,
    ``Attributes:`` first. An attribute a subclass sets again (``type`` of each
    message body) has the text of the base class that documents it, as
    ``inspect.getdoc`` inherits a docstring.
    """
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.docstring is not None:
            continue
        description = _description(cls, member.name)
        if description:
            member.docstring = griffe.Docstring(description, parent=member)


# --- the extension ------------------------------------------------------------


def _walk(
    obj: griffe.Module | griffe.Class, seen: set[str]
) -> Iterator[griffe.Module | griffe.Class]:
    """``obj`` and every module and class under it, each once, parents first."""
    if obj.path in seen:
        return
    seen.add(obj.path)
    yield obj
    for member in list(obj.members.values()):
        if not member.is_alias and (member.is_module or member.is_class):
            yield from _walk(member, seen)  # type: ignore[arg-type]


class ApiReference(griffe.Extension):
    """Apply the reference's fixes, in order, to every module and class of a package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        objects = list(_walk(pkg, set()))
        classes: list[griffe.Class] = [obj for obj in objects if isinstance(obj, griffe.Class)]
        # Each fix runs over the whole package before the next one starts: a
        # fix may read what an earlier one did to another class (a base's
        # attrs fields, its __init__, its dunders), so running them class by
        # class would change what they see.
        for cls in classes:
            _attrs_init(cls)
        for obj in objects:
            _literal_defaults(obj)
        for cls in classes:
            _hide_undocumented_dunders(cls)
        for cls in classes:
            _self_returns(cls)
        for cls in classes:
            _attributes_from_class_docstring(cls)
