"""What each keyword of an endpoint accepts, and how it goes on the wire.

A `Param` ties a Python keyword to the NIM form field(s) it fills. Its encoder
refuses a value of the wrong type with ``InvalidRequest`` naming the NIM
parameter, and writes the value the way the server reads it: booleans as the
strings ``true``/``false``, JSON values as compact JSON text (NetEase's 接口概述,
the calling convention). The limits on the written values live in ``_validate``.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any

import attrs

from ._errors import InvalidRequest
from ._models import Body, MessageOption, Push
from ._uploads import Upload, file_part

__all__ = [
    "Encoder",
    "Form",
    "Param",
    "boolean",
    "codes",
    "epoch_millis",
    "file_content",
    "int_list",
    "integer",
    "json_text",
    "json_value",
    "message_body",
    "message_id",
    "message_option",
    "not_a_list",
    "only_false",
    "only_true",
    "push",
    "safe_repr",
    "save",
    "session_type",
    "string",
    "string_list",
    "upload_content",
    "zero_one",
]

# NIM parameter → wire value: text, or the file part of msg/fileUpload.
Form = dict[str, "str | Upload"]
# Turns one keyword's (non-None) value into its form fields, or raises InvalidRequest.
Encoder = Callable[[Any], Form]


def _type_name(value: object) -> str:
    return f"{type(value).__name__} {safe_repr(value)}"[:80]


def safe_repr(value: object) -> str:
    """repr() that cannot fail: an int past Python's 4300-digit limit, a broken __repr__."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<an int of {value.bit_length()} bits>"
    try:
        return repr(value)[:200]
    except Exception:  # a caller's object with a broken __repr__: say what it is
        return f"<{type(value).__name__} object>"


# NIM's integers are Java longs.
_LONG = range(-(2**63), 2**63)


def _long(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in _LONG


def _refuse(parameter: str, accepts: str, value: object) -> InvalidRequest:
    return InvalidRequest(parameter, accepts, _type_name(value))


@attrs.frozen
class Param:
    """One keyword of an endpoint: its name, how it is written, and whether it must be given.

    Args:
        keyword: The Python keyword, e.g. ``"from_"``.
        encode: Writes a value that is not None as form fields.
        required: None is refused instead of leaving the field out.
        nim: The NIM parameter(s) it fills, for errors and the docs.
        also: Further keywords that fill the same parameter; the encoder then
            gets a tuple of all their values (delRoamSession's ``type`` from
            ``team`` and ``super_team``).
    """

    keyword: str
    encode: Encoder
    nim: str
    required: bool = False
    also: tuple[str, ...] = ()

    @property
    def keywords(self) -> tuple[str, ...]:
        """Every keyword this parameter reads."""
        return (self.keyword, *self.also)

    def fields(self, value: object) -> Form:
        """Return the form fields for ``value``; none for an optional None.

        Raises:
            InvalidRequest: ``value`` is None but required, or of a type the
                parameter refuses.
        """
        if value is None:
            if self.required:
                raise InvalidRequest(self.nim, "given (it is required)", "None")
            return {}
        return self.encode(value)


def json_text(value: Any) -> str:
    """Encode ``value`` as compact JSON, keeping non-ASCII characters as they are.

    Limits count characters of the value as sent, so ``\\uXXXX`` escapes would
    make a 500-character Chinese text six times longer than it is.
    """
    return _JSON.encode(value)


# What json.dumps builds afresh at each call when given these options.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def session_type(value: tuple[object, object]) -> Form:
    """delRoamSession's ``type`` from ``team`` and ``super_team``: 1 p2p, 2 team, 3 super team.

    Java SDK DeleteRoamSessionRequestV1: "1-单聊，2-高级群，3-超大群".
    """
    team, super_team = value
    for keyword, flag in (("team", team), ("super_team", super_team)):
        if not isinstance(flag, bool):
            raise InvalidRequest("type", f"{keyword}=True or False", _type_name(flag))
    if team and super_team:
        raise InvalidRequest("type", "one of team=True or super_team=True, not both", "both")
    return {"type": "3" if super_team else "2" if team else "1"}


def int_list(name: str) -> Encoder:
    """A non-empty iterable of ints within 64 bits, sent as a JSON array."""
    return _json_list(name, "a non-empty list of ints within 64 bits", _long, non_empty=True)


def string(name: str) -> Encoder:
    """A ``str`` sent as it is."""

    def encode(value: object) -> Form:
        if not isinstance(value, str):
            raise _refuse(name, "a str", value)
        return {name: value}

    return encode


def boolean(name: str) -> Encoder:
    """A ``bool`` sent as ``true``/``false`` (NetEase's 接口概述: booleans in form fields)."""

    def encode(value: object) -> Form:
        if not isinstance(value, bool):
            raise _refuse(name, "True or False", value)
        return {name: "true" if value else "false"}

    return encode


def codes(name: str, if_false: str, if_true: str) -> Encoder:
    """A ``bool`` that picks one of two NIM codes (``team`` → ``ope`` 0 or 1, ...)."""

    def encode(value: object) -> Form:
        if not isinstance(value, bool):
            raise _refuse(name, "True or False", value)
        return {name: if_true if value else if_false}

    return encode


def zero_one(name: str) -> Encoder:
    """A ``bool`` sent as ``1``/``0`` (``markRead``, ``msgSenderNoSense``, ...)."""
    return codes(name, "0", "1")


def only_true(name: str, code: str) -> Encoder:
    """A ``bool`` whose True sends ``code`` and whose False sends nothing (``ignoreTime``)."""

    def encode(value: object) -> Form:
        if not isinstance(value, bool):
            raise _refuse(name, "True or False", value)
        return {name: code} if value else {}

    return encode


def only_false(name: str, code: str) -> Encoder:
    """False sends ``code``; the server knows no other value (``useYidun=0``)."""

    def encode(value: object) -> Form:
        if value is not False:
            raise _refuse(name, "False or None", value)
        return {name: code}

    return encode


def save(name: str) -> Encoder:
    """``offline``: True keeps a notification offline (2), False online only (1).

    NetEase's 消息功能 page, sendAttachMsg ``save``: "1表示只发在线,2表示会存离线".
    """
    return codes(name, "1", "2")


def integer(name: str) -> Encoder:
    """An ``int`` (not a bool) sent in decimal."""

    def encode(value: object) -> Form:
        if not _long(value):
            raise _refuse(name, "an int that fits in 64 bits", value)
        return {name: str(value)}

    return encode


def message_id(name: str) -> Encoder:
    """A message id: an ``int``, or a ``str`` of decimal digits."""

    def encode(value: object) -> Form:
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
            value = int(value)
        if _long(value):
            return {name: str(value)}
        raise _refuse(name, "a message id: an int or a str of digits, within 64 bits", value)

    return encode


def epoch_millis(name: str) -> Encoder:
    """A ``datetime`` (naive means local time) or epoch milliseconds as an ``int``."""

    accepts = "a datetime or epoch milliseconds (an int within 64 bits)"

    def encode(value: object) -> Form:
        if isinstance(value, dt.datetime):
            try:
                value = int(value.timestamp() * 1000)
            except (ValueError, OverflowError, OSError) as exc:  # year 1 in a zone east of UTC
                raise _refuse(name, accepts, value) from exc
        if _long(value):
            return {name: str(value)}
        raise _refuse(name, accepts, value)

    return encode


def _json_or_refuse(name: str, accepts: str, value: object) -> str:
    try:
        return json_text(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _refuse(name, accepts, value) from exc


def json_value(name: str, *, text: bool = True) -> Encoder:
    """A mapping sent as a JSON object, or (with ``text``) a ``str`` sent as it is."""
    accepts = "a str or a JSON-able mapping" if text else "a JSON-able mapping"

    def encode(value: object) -> Form:
        if text and isinstance(value, str):
            return {name: value}
        if not isinstance(value, Mapping):
            raise _refuse(name, accepts, value)
        # A mapping of another kind is copied: json encodes only dicts as objects.
        plain = value if type(value) is dict else dict(value)
        return {name: _json_or_refuse(name, accepts, plain)}

    return encode


def string_list(name: str) -> Encoder:
    """An iterable of ``str`` (not a single ``str``) sent as a JSON array."""
    return _json_list(name, "an iterable of str (not a single str)", _is_str)


def _is_str(item: object) -> bool:
    return isinstance(item, str)


def _json_list(
    name: str, accepts: str, fits: Callable[[object], bool], *, non_empty: bool = False
) -> Encoder:
    def encode(value: object) -> Form:
        if not_a_list(value) or not isinstance(value, Iterable):
            raise _refuse(name, accepts, value)
        items = list(value)
        if (non_empty and not items) or not all(fits(item) for item in items):
            raise _refuse(name, accepts, items)
        return {name: json_text(items)}

    return encode


def _finite_number(value: object) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value)  # type: ignore[arg-type]


# A body field's annotation → what it accepts, in words, and the check.
_BODY_FIELD_KINDS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "str": ("a str", lambda value: isinstance(value, str)),
    "str | None": ("a str or None", lambda value: value is None or isinstance(value, str)),
    "int": ("an int", lambda value: isinstance(value, int) and not isinstance(value, bool)),
    "float": ("a finite number", _finite_number),
    "Any": ("a JSON-able value", lambda value: True),
}


# A body class → each of its fields: its name, what it accepts, the check.
_BODY_CHECKS: dict[type[Body], tuple[tuple[str, str, Callable[[object], bool]], ...]] = {}


def _body_checks(kind: type[Body]) -> tuple[tuple[str, str, Callable[[object], bool]], ...]:
    checks = _BODY_CHECKS.get(kind)
    if checks is None:
        checks = _BODY_CHECKS[kind] = tuple(
            (field.name, *_BODY_FIELD_KINDS[str(field.type)]) for field in attrs.fields(kind)
        )
    return checks


def not_a_list(value: object) -> bool:
    """True for what iterates but is no list of accids: text, bytes, a mapping, a file."""
    return isinstance(value, str | bytes | bytearray | Mapping | io.IOBase) or not isinstance(
        value, Iterable | AsyncIterable
    )


def message_body(value: object) -> Form:
    """A message body: its class gives ``type``, its JSON the ``body`` field."""
    if not isinstance(value, Body):
        kinds = "Text, Image, Voice, Video, Location, File, Tip or Custom"
        raise _refuse("body", f"a message body: {kinds}", value)
    for name, accepts, fits in _body_checks(type(value)):
        given = getattr(value, name)
        if not fits(given):
            where = f"{type(value).__name__}.{name}"
            raise _refuse("body", f"a body whose {where} is {accepts}", given)
    accepts = "a message body whose fields are JSON-able"
    return {"type": str(value.type), "body": _json_or_refuse("body", accepts, value.to_json())}


def message_option(value: object) -> Form:
    """A ``MessageOption``: only the keys that are set, or no ``option`` at all."""
    if not isinstance(value, MessageOption):
        raise _refuse("option", "a MessageOption", value)
    keys = value.to_json()
    for key, flag in keys.items():
        if not isinstance(flag, bool):
            raise _refuse("option", f"a MessageOption whose {key} is True, False or None", flag)
    return {"option": json_text(keys)} if keys else {}


def push(value: object) -> Form:
    """A ``Push``: its ``pushcontent`` and ``payload``."""
    if not isinstance(value, Push):
        raise _refuse("pushcontent", "a Push", value)
    fields: Form = {}
    if value.content is not None:
        fields.update(string("pushcontent")(value.content))
    if value.payload is not None:
        fields.update(json_value("payload", text=False)(value.payload))
    return fields


def upload_content(value: object) -> Form:
    """``bytes`` sent as base64 text (msg/upload: "字符流base64串")."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _refuse("content", "bytes", value)
    return {"content": base64.b64encode(value).decode("ascii")}


def file_content(value: object) -> Form:
    """Bytes, a path or a binary file, sent as the multipart ``content`` part (msg/fileUpload)."""
    accepts = "bytes, the path of a readable file, or an open binary file object"
    try:
        part = file_part(value)
    except (OSError, ValueError) as exc:  # no such file, a directory, a NUL or a surrogate
        raise InvalidRequest("content", accepts, f"{_type_name(value)}: {exc}"[:160]) from exc
    if part is None:
        raise _refuse("content", accepts, value)
    return {"content": part}
