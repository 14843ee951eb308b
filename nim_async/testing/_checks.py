"""The kinds of parameter rule the table in `_rules` is made of.

Each kind is a small frozen value holding its limit; `problem` says how a form
value breaks it, completing the sentence "<param> ...", or returns ``None``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Protocol

import attrs

__all__ = [
    "AntispamCustom",
    "Base64",
    "FileBytes",
    "Flags",
    "IntCsv",
    "IntIn",
    "IntList",
    "Integer",
    "JsonText",
    "MaxChars",
    "OneOf",
    "Rule",
    "StrList",
    "SubsetOf",
]

# The service is Java: integers are longs, at most 19 digits.
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_LONG = range(-(2**63), 2**63)


def _as_int(value: str) -> int | None:
    # Strict ASCII digits: int() would also take " 7", "+7", "7_0" and other digits.
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value)
    return number if number in _LONG else None


def _load(value: str) -> tuple[bool, object]:
    try:
        return True, json.loads(value)
    except ValueError:
        return False, None


class Rule(Protocol):
    """What a form value must be; `problem` says how it fails, or ``None``."""

    def problem(self, value: str) -> str | None:
        """Return the problem with ``value`` (completing "<param> ..."), or ``None``."""
        ...


@attrs.frozen
class MaxChars:
    """At most ``limit`` characters (NetEase's API pages count characters, "字符")."""

    limit: int

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        return None if len(value) <= self.limit else f"is longer than {self.limit} characters"


@attrs.frozen
class IntIn:
    """An integer among ``values`` (NetEase's API pages: "其他返回414", others answer 414)."""

    values: tuple[int, ...]

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        if _as_int(value) in self.values:
            return None
        return "must be one of " + ", ".join(map(str, self.values))


@attrs.frozen
class Integer:
    """An integer, at least ``minimum`` and at most ``maximum`` when they are given."""

    minimum: int | None = None
    maximum: int | None = None

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        number = _as_int(value)
        if number is None:
            return "must be an integer"
        if self.minimum is not None and number < self.minimum:
            return f"must be at least {self.minimum}"
        if self.maximum is not None and number > self.maximum:
            return f"must be at most {self.maximum}"
        return None


@attrs.frozen
class IntCsv:
    """Integers among ``values``, separated by commas ("0,1,2,3": a history query's ``type``)."""

    values: tuple[int, ...]

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        if all(_as_int(item) in self.values for item in value.split(",")):
            return None
        return "must be a comma-separated list of " + ", ".join(map(str, self.values))


@attrs.frozen
class OneOf:
    """Exactly one of ``values``: form booleans are the strings true/false, as NIM reads them."""

    values: tuple[str, ...]

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        return None if value in self.values else "must be " + " or ".join(self.values)


@attrs.frozen
class JsonText:
    """Valid JSON of at most ``max_chars`` characters; a JSON object if ``object_only``."""

    max_chars: int | None = None
    object_only: bool = False

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        if self.max_chars is not None and len(value) > self.max_chars:
            return f"is longer than {self.max_chars} characters"
        ok, data = _load(value)
        if not ok:
            return "must be valid JSON"
        if self.object_only and not isinstance(data, dict):
            return "must be a JSON object"
        return None


@attrs.frozen
class Flags:
    """A JSON object of booleans whose keys are among ``keys`` (the ``option`` field)."""

    keys: frozenset[str]

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        ok, data = _load(value)
        if not ok or not isinstance(data, dict):
            return "must be a JSON object"
        unknown = sorted(set(data) - self.keys)
        if unknown:
            return f"has unknown keys {unknown}"
        if not all(isinstance(flag, bool) for flag in data.values()):
            return "values must be true or false"
        return None


@attrs.frozen
class StrList:
    """A JSON array of ``min_items``..``max_items`` strings, each at most ``item_chars`` long."""

    max_items: int | None
    min_items: int = 0
    item_chars: int | None = None

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        ok, data = _load(value)
        if not ok or not isinstance(data, list) or not all(isinstance(i, str) for i in data):
            return "must be a JSON array of strings"
        if self.max_items is not None and len(data) > self.max_items:
            # seeds/000 error example: "more than 500 accids!"
            return f"has more than {self.max_items} items"
        if len(data) < self.min_items:
            return f"must have at least {self.min_items} item(s)"
        if self.item_chars is not None and any(len(i) > self.item_chars for i in data):
            return f"has an item longer than {self.item_chars} characters"
        return None


@attrs.frozen
class IntList:
    """A JSON array of at least ``min_items`` integers that fit a Java long (message ids)."""

    min_items: int = 1

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        ok, data = _load(value)
        # bool is an int in Python, but true/false are not numbers in JSON.
        if not ok or not isinstance(data, list):
            return "must be a JSON array of integers"
        if not all(type(i) is int and i in _LONG for i in data):
            return "must be a JSON array of integers"
        if len(data) < self.min_items:
            return f"must have at least {self.min_items} item(s)"
        return None


@attrs.frozen
class SubsetOf:
    """A non-empty JSON array whose items are among ``values`` (broadcast ``targetOs``)."""

    values: tuple[str, ...]

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        ok, data = _load(value)
        if not ok or not isinstance(data, list) or not data:
            return "must be a non-empty JSON array"
        if not all(isinstance(i, str) and i in self.values for i in data):
            return "items must be among " + ", ".join(self.values)
        return None


@attrs.frozen
class Base64:
    """Standard base64 text whose decoded bytes are at most ``max_bytes`` (msg/upload)."""

    max_bytes: int

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        try:
            # Line breaks are tolerated: MIME encoders (Java's chunked encoder) add them.
            data = base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            return "must be valid base64"
        if len(data) > self.max_bytes:
            return f"is larger than {self.max_bytes} bytes once decoded"
        return None


@attrs.frozen
class AntispamCustom:
    """sendMsg's antispamCustom: ``{"type": 1|2, "data": str}``, at most as long as ``body``."""

    max_chars: int

    def problem(self, value: str) -> str | None:
        """See `Rule.problem`."""
        if len(value) > self.max_chars:
            return f"is longer than {self.max_chars} characters"
        ok, data = _load(value)
        if not ok or not isinstance(data, dict):
            return "must be a JSON object"
        if data.get("type") not in (1, 2) or not isinstance(data.get("data"), str):
            return 'must look like {"type": 1|2, "data": "..."}'
        return None


@attrs.frozen
class FileBytes:
    """A multipart file part of at most ``max_bytes`` (msg/fileUpload ``content``)."""

    max_bytes: int
