"""The emulator's message copy (抄送): signed JSON events POSTed to the app's server.

Written from the facts file ("Message-copy callbacks"), independent of the
client's verifier: ``AppKey``, ``CurTime`` in Unix **milliseconds**, ``MD5``
(md5 hex of the raw body) and ``CheckSum = sha1(AppSecret + MD5 + CurTime)``
in lowercase hex. The receiver has 5 s to answer.

The event of a message follows NIM's copy documentation, not the facts file:
``eventType`` 1, and every value a string, as NIM sends them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from ._records import StoredMessage

__all__ = ["ANSWER_TIMEOUT", "deliver", "message_event", "signed_headers"]

ANSWER_TIMEOUT = 5.0  # facts: "The receiver must answer within 5 s"

# NIM's copy names for the message types of sendMsg's ``type``; others go as the number.
_MSG_TYPES = {
    0: "TEXT",
    1: "PICTURE",
    2: "AUDIO",
    3: "VIDEO",
    4: "LOCATION",
    6: "FILE",
    10: "TIPS",
    100: "CUSTOM",
}


def message_event(message: StoredMessage) -> dict[str, str]:
    """The copy event (``eventType`` 1) of a stored message.

    Args:
        message: A message with a msgid (custom notifications have none and no event).

    Returns:
        ``eventType``, ``convType`` (``PERSON`` or ``TEAM``), ``fromAccount``, ``to``,
        ``msgType``, ``body`` (the ``body`` field as sent), ``msgidServer``,
        ``msgTimestamp`` (Unix ms) and ``fromClientType`` (``REST``), all strings.
    """
    kind = -1 if message.type is None else message.type
    return {
        "eventType": "1",
        "convType": "TEAM" if message.team else "PERSON",
        "fromAccount": message.from_,
        "to": message.to,
        "msgType": _MSG_TYPES.get(kind, str(kind)),
        "body": message.body or "",
        "msgidServer": str(message.msgid),
        "msgTimestamp": str(message.timetag),
        "fromClientType": "REST",
    }


def signed_headers(app_key: str, app_secret: str, body: bytes, cur_time_ms: int) -> dict[str, str]:
    """The four headers NIM signs a copy request with.

    Args:
        app_key: The app's key.
        app_secret: The app's secret.
        body: The raw body.
        cur_time_ms: ``CurTime``, Unix milliseconds.

    Returns:
        ``AppKey``, ``CurTime``, ``MD5``, ``CheckSum`` and the JSON ``Content-Type``.
    """
    md5 = hashlib.md5(body).hexdigest()
    cur_time = str(cur_time_ms)
    check = hashlib.sha1((app_secret + md5 + cur_time).encode("utf-8")).hexdigest()
    return {
        "AppKey": app_key,
        "CurTime": cur_time,
        "MD5": md5,
        "CheckSum": check,
        "Content-Type": "application/json; charset=utf-8",
    }


async def deliver(
    url: str,
    events: Iterable[dict[str, Any]],
    app_key: str,
    app_secret: str,
    clock: Callable[[], float],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[int]:
    """POST each event to ``url``, one at a time, each signed when it is sent.

    Args:
        url: The receiver's URL.
        events: The JSON events, in order.
        app_key: The app's key.
        app_secret: The app's secret.
        clock: The service's clock, Unix seconds (``CurTime`` is its milliseconds).
        transport: An httpx transport (an ASGI app in-process); ``None``: the network.

    Returns:
        The HTTP status of each answer, in order.

    Raises:
        httpx.HTTPError: A request failed, or got no answer within 5 s.
    """
    statuses: list[int] = []
    async with httpx.AsyncClient(transport=transport, timeout=ANSWER_TIMEOUT) as http:
        for event in events:
            body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers = signed_headers(app_key, app_secret, body, int(clock() * 1000))
            response = await http.post(url, content=body, headers=headers)
            statuses.append(response.status_code)
    return statuses
