"""A griffe extension: an attribute documented in its class's docstring shows that text.

The package documents a class's fields where Google style puts them: in the
class docstring, as ``Attributes:`` entries, or (attrs classes, whose
constructor arguments are their fields) as ``Args:`` entries. The reference
also lists every field as a member of its own, which would be blank: this
gives each attribute without a docstring of its own the text of its entry,
``Attributes:`` first. An attribute a subclass sets again (``type`` of each
message body) has the text of the base class that documents it, as
``inspect.getdoc`` inherits a docstring. Loaded by mkdocs.yml; excluded from the built site.
"""

from __future__ import annotations

from typing import Any

import griffe

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


def _document(cls: griffe.Class) -> None:
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.docstring is not None:
            continue
        description = _description(cls, member.name)
        if description:
            member.docstring = griffe.Docstring(description, parent=member)


def _walk(obj: griffe.Module | griffe.Class, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    if isinstance(obj, griffe.Class):
        _document(obj)
    for member in list(obj.members.values()):
        if not member.is_alias and (member.is_module or member.is_class):
            _walk(member, seen)  # type: ignore[arg-type]


class AttributesFromClassDocstring(griffe.Extension):
    """Give each undocumented attribute its entry from the class docstring."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())
