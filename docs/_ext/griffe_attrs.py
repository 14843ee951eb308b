"""A griffe extension: give ``@attrs.frozen`` / ``@attrs.define`` classes their ``__init__``.

nim_async's value classes are attrs classes documented with ``Args:`` in the class
docstring (STYLE.md). attrs writes ``__init__`` at import time, so griffe's static
analysis sees no signature and warns that every documented parameter "does not
appear in the function signature". This rebuilds the signature attrs generates,
the way griffe's built-in dataclasses extension does for ``@dataclass``: annotated
fields in order (bases first), minus ``init=False``, with a leading underscore
stripped (attrs' private-name rule) or ``alias=`` used, keyword-only where asked.
A field declared with ``attrs.field(...)`` shows its default as its value.
Loaded by mkdocs.yml; excluded from the built site.
"""

from __future__ import annotations

from typing import Any

import griffe

_DECORATORS = {
    "attrs.frozen",
    "attrs.define",
    "attrs.mutable",
    "attr.s",
    "attr.attrs",
    "attr.frozen",
    "attr.define",
    "attr.mutable",
}
_FIELDS = {"attrs.field", "attr.ib", "attr.attrib", "attr.field"}


def _call_arguments(expr: object) -> dict[str, Any]:
    if not isinstance(expr, griffe.ExprCall):
        return {}
    return {arg.name: arg.value for arg in expr.arguments if isinstance(arg, griffe.ExprKeyword)}


def _attrs_decorator(cls: griffe.Class) -> griffe.Expr | None:
    for decorator in cls.decorators:
        value = decorator.value
        function = value.function if isinstance(value, griffe.ExprCall) else value
        if isinstance(function, griffe.Expr) and function.canonical_path in _DECORATORS:
            return value
    return None


def _parameters(cls: griffe.Class) -> list[griffe.Parameter]:
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
            if isinstance(value, griffe.ExprCall) and value.canonical_path in _FIELDS
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


def _set_init(cls: griffe.Class) -> None:
    if "__init__" in cls.members or _attrs_decorator(cls) is None:
        return
    parameters: dict[str, griffe.Parameter] = {}
    try:
        mro = cls.mro()
    except ValueError:
        mro = []
    for parent in [*reversed(mro), cls]:
        if _attrs_decorator(parent) is not None:
            for parameter in _parameters(parent):
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


def _walk(obj: griffe.Module | griffe.Class, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    if isinstance(obj, griffe.Class):
        _set_init(obj)
    for member in list(obj.members.values()):
        if not member.is_alias and (member.is_module or member.is_class):
            _walk(member, seen)  # type: ignore[arg-type]


class AttrsInit(griffe.Extension):
    """Create the ``__init__`` of every attrs class in a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())
