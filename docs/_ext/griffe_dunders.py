"""A griffe extension: a dunder is in the reference only if it has a docstring.

griffe counts every ``__name__`` member as public, so ``filters: public``
would list ``__slots__``, ``__attrs_attrs__``, ``__repr__`` and ``__reduce__``:
machinery, not API. A dunder that is part of a class's API (``__aenter__``
of a client used as ``async with``) says what it does in a docstring, and is
shown; every other one is dropped from the loaded model, so it is neither
rendered nor listed in the table of contents. (Dropped, not marked
``public = False``: the members of a class re-exported by ``__init__.py`` are
aliases, which do not carry that mark over.) ``__init__`` stays: the class's
signature comes from it (``merge_init_into_class``). Loaded by mkdocs.yml;
excluded from the built site.
"""

from __future__ import annotations

from typing import Any

import griffe

_KEEP = {"__init__", "__new__"}


def _walk(obj: griffe.Module | griffe.Class, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    for member in list(obj.members.values()):
        if member.is_alias:
            continue
        if member.is_module or member.is_class:
            _walk(member, seen)  # type: ignore[arg-type]
        undocumented = member.is_special and not member.docstring
        if obj.is_class and undocumented and member.name not in _KEEP:
            obj.del_member(member.name)


class HideUndocumentedDunders(griffe.Extension):
    """Drop every dunder without a docstring, but ``__init__``, from every class."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())
