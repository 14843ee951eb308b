"""Turning Python values into NIM form fields, the way the server reads them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import InvalidRequest
from ._models import Body, MessageOption, Push

__all__ = [
    "Form",
    "body_fields",
    "flag",
    "json_text",
    "millis",
    "option_field",
    "push_fields",
    "save_field",
    "wire",
]

# NIM parameter → wire value; None means "not sent, server default".
Form = dict[str, str | None]


def json_text(value: Any) -> str:
    """Encode ``value`` as compact JSON, keeping non-ASCII characters as they are.

    Limits count characters of the value as sent, so ``\\uXXXX`` escapes would
    make a 500-character Chinese text six times longer than it is.
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def wire(value: Any) -> str | None:
    """Encode one parameter: booleans as ``true``/``false`` (facts), containers as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return json_text(dict(value))
    if isinstance(value, Iterable):
        return json_text(list(value))
    raise TypeError(f"cannot send a {type(value).__name__} as a form field")


def flag(value: bool | None) -> str | None:
    """Encode a 0/1 flag (``markRead``, ``msgSenderNoSense``, ...)."""
    return None if value is None else str(int(value))


def push_fields(push: Push | None) -> Form:
    """Return the ``pushcontent`` and ``payload`` fields of ``push``."""
    if push is None:
        return {}
    return {"pushcontent": push.content, "payload": wire(push.payload)}


def option_field(option: MessageOption | None) -> str | None:
    """Return the ``option`` field: only the keys that are set, or nothing at all."""
    if option is None:
        return None
    keys = option.to_json()
    return json_text(keys) if keys else None


def body_fields(body: Body) -> Form:
    """Return the ``type`` and ``body`` fields of a message body.

    Raises:
        InvalidRequest: ``body`` is not one of the body classes.
    """
    if not isinstance(body, Body):
        raise InvalidRequest(
            "body",
            "a message body: Text, Image, Voice, Video, Location, File, Tip or Custom",
            type(body).__name__,
        )
    return {"type": str(body.type), "body": json_text(body.to_json())}


def save_field(offline: bool | None) -> str | None:
    """Return ``save``: 2 keeps a notification for offline users, 1 sends it online only.

    seed, sendAttachMsg save: "1表示只发在线,2表示会存离线".
    """
    return None if offline is None else ("2" if offline else "1")


def millis(moment: dt.datetime | int) -> str:
    """Return epoch milliseconds for a datetime (naive means local time) or an int as given."""
    if isinstance(moment, dt.datetime):
        return str(int(moment.timestamp() * 1000))
    return str(int(moment))
