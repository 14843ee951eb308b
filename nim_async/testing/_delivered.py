"""Assertions on what a `NimEmulator` delivered: `deliveries` and `assert_delivered`.

A delivery is a `StoredMessage`: one message or custom notification the
emulator accepted for one recipient (a batch call makes one per registered
recipient). Messages later recalled or deleted still count: they were delivered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._emulator import NimEmulator
from ._records import Call, StoredMessage

__all__ = ["assert_delivered", "deliveries"]

_SENDS = frozenset({"msg/sendMsg", "msg/sendAttachMsg"})
_BATCHES = frozenset({"msg/sendBatchMsg", "msg/sendBatchAttachMsg"})
_SHOWN = 120  # characters of a body or attach shown in a failure message


def deliveries(emulator: NimEmulator, *, to: str | None = None) -> list[StoredMessage]:
    """Return what the emulator delivered, in the order it accepted it.

    Args:
        emulator: The emulator the client sent through.
        to: Only deliveries to this accid (or team id); ``None``: every delivery.

    Returns:
        A new list of the deliveries; ``to``, ``from_``, ``body`` (messages) and
        ``attach`` (notifications) say to whom, from whom and what.
    """
    return [message for message in list(emulator.messages) if to is None or message.to == to]


def assert_delivered(
    emulator: NimEmulator,
    *,
    to: str,
    body: str | Mapping[str, Any] | None = None,
    attach: str | Mapping[str, Any] | None = None,
    from_: str | None = None,
    times: int = 1,
) -> list[StoredMessage]:
    """Assert that exactly ``times`` deliveries to ``to`` match, and return them.

    ``body`` matches messages (``send_msg``, ``send_batch_msg``) and ``attach``
    matches custom notifications (``send_attach_msg``, ``send_batch_attach_msg``);
    with neither, every delivery to ``to`` counts. A string matches the form
    field exactly as sent; a mapping matches the field decoded from JSON, so
    ``body={"msg": "hi"}`` matches the text message "hi" however it was encoded.

    Args:
        emulator: The emulator the client sent through.
        to: The recipient's accid, or a team id.
        body: The message body to match.
        attach: The notification's attach to match.
        from_: Only deliveries from this sender.
        times: How many matching deliveries there must be; 0 asserts there are none.

    Returns:
        The matching deliveries, in the order the emulator accepted them.

    Raises:
        AssertionError: Not exactly ``times`` deliveries match. The message lists
            what ``to`` did get, the calls naming ``to`` that failed or left it
            out as unregistered, and who else got deliveries.
        ValueError: Both ``body`` and ``attach`` are given, or ``times`` is negative.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this function's
    if body is not None and attach is not None:
        raise ValueError("give body (a message) or attach (a notification), not both")
    if times < 0:
        raise ValueError("times must be 0 or more")
    received = deliveries(emulator, to=to)
    found = [
        message
        for message in received
        if (from_ is None or message.from_ == from_)
        and (body is None or _matches(message.body, body))
        and (attach is None or _matches(message.attach, attach))
    ]
    if len(found) != times:
        wanted = _wanted(to, body, attach, from_, times)
        raise AssertionError(_explain(emulator, wanted, to, received, len(found)))
    return found


def _matches(sent: str | None, wanted: str | Mapping[str, Any]) -> bool:
    if sent is None:
        return False
    if isinstance(wanted, str):
        return sent == wanted
    try:
        return bool(json.loads(sent) == dict(wanted))
    except ValueError:
        return False


def _wanted(
    to: str,
    body: str | Mapping[str, Any] | None,
    attach: str | Mapping[str, Any] | None,
    from_: str | None,
    times: int,
) -> str:
    count = "no delivery" if times == 0 else f"{times} deliver{'y' if times == 1 else 'ies'}"
    wanted = f"expected {count} to {to!r}"
    if from_ is not None:
        wanted += f" from {from_!r}"
    if body is not None:
        wanted += f" with body {body!r}"
    if attach is not None:
        wanted += f" with attach {attach!r}"
    return wanted


def _explain(
    emulator: NimEmulator, wanted: str, to: str, received: list[StoredMessage], found: int
) -> str:
    lines = [f"{wanted}, found {found}"]
    lines.append(f"  deliveries to {to!r}: {len(received) or 'none'}")
    lines += [f"    {_describe(message)}" for message in received]
    refused = [call for call in list(emulator.calls) if _refused_for(call, to)]
    if refused:
        lines.append(f"  calls naming {to!r} that failed or left it out: {len(refused)}")
        lines += [f"    {_describe_call(call, to)}" for call in refused]
    others: dict[str, int] = {}
    for message in deliveries(emulator):
        if message.to != to:
            others[message.to] = others.get(message.to, 0) + 1
    if others:
        counts = ", ".join(f"{accid!r} ×{n}" for accid, n in others.items())
        lines.append(f"  deliveries to others: {counts}")
    lines.append(f"  {emulator.summary()}")
    return "\n".join(lines)


def _describe(message: StoredMessage) -> str:
    if message.attach is not None:
        what = f"attach {_short(message.attach)}"
    else:
        what = f"type {message.type}, body {_short(message.body or '')}"
    return f"{message.action} from {message.from_!r}: {what}"


def _short(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _refused_for(call: Call, to: str) -> bool:
    if call.action in _SENDS:
        return call.form.get("to") == to and call.code != 200
    if call.action in _BATCHES:
        if to not in _accids(call.form.get("toAccids")):
            return False
        return call.code != 200 or to in _unregistered(call.answer)
    return False


def _describe_call(call: Call, to: str) -> str:
    if call.code == 200:
        return f"{call.action} answered {to!r} as unregistered"
    if call.code is None:
        return f"{call.action} answered HTTP {call.status} (an HTML page)"
    desc = call.answer.get("desc") if isinstance(call.answer, dict) else None
    return f"{call.action} answered code {call.code}" + (f": {desc}" if desc else "")


def _accids(field: str | None) -> list[str]:
    try:
        accids = json.loads(field or "[]")
    except ValueError:
        return []
    return [accid for accid in accids if isinstance(accid, str)] if isinstance(accids, list) else []


def _unregistered(answer: dict[str, Any] | str) -> list[str]:
    if not isinstance(answer, dict):
        return []
    unregister = answer.get("unregister", [])
    # The other documented shape: the array as a JSON-encoded string.
    return _accids(unregister) if isinstance(unregister, str) else list(unregister)
