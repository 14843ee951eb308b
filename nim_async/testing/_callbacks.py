"""The emulator's message copy (抄送): signed JSON events POSTed to the app's server.

Written from NetEase's message-copy (消息抄送) documentation, independent of the
client's verifier: ``AppKey``, ``CurTime`` in Unix **milliseconds**, ``MD5``
(md5 hex of the raw body) and ``CheckSum = sha1(AppSecret + MD5 + CurTime)``
in lowercase hex. The receiver has 5 s to answer.

The events follow NetEase's message-copy page (会话类型消息抄送): ``eventType`` 1
for messages (``convType`` ``PERSON`` / ``TEAM``) and for custom notifications
(``CUSTOM_PERSON`` / ``CUSTOM_TEAM``), every value a string, as the page documents
them. With ``numbers=True`` the fields the page says "可转为 Long/Integer" (can be
read as a number) go as JSON numbers instead, so that a receiver can be tested
against both forms.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from ._records import StoredMessage

__all__ = ["ANSWER_TIMEOUT", "NUMERIC_FIELDS", "deliver", "message_event", "signed_headers"]

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

# The message-copy page's numeric fields: eventType "值为 1", msgTimestamp a time in
# ms, msgidServer "可转为 Long", resendFlag and customSafeFlag "可转为 Integer". ``to``
# is left a string: only a team's tid is numeric, and the emulator's tids need not be.
NUMERIC_FIELDS = ("eventType", "msgidServer", "msgTimestamp", "resendFlag", "customSafeFlag")


def message_event(message: StoredMessage, *, numbers: bool = False) -> dict[str, Any]:
    """The copy event (``eventType`` 1) of a stored message or custom notification.

    Args:
        message: A message (``msgid`` set) or a custom notification
            (``notification_id`` set).
        numbers: Give `NUMERIC_FIELDS` as JSON numbers instead of strings.

    Returns:
        Both kinds: ``eventType``, ``convType``, ``fromAccount``, ``to``, ``msgType``,
        ``msgidServer``, ``msgTimestamp`` (Unix ms) and ``fromClientType`` (``REST``).
        A message adds ``body`` (as sent), ``msgidClient`` and ``resendFlag`` (``0``):
        ``convType`` ``PERSON`` or ``TEAM``, ``msgType`` its type's name (``TEXT``, ...).
        A notification adds ``attach`` (as sent) and ``customSafeFlag`` (``0`` for
        ``save=1``, online only; else ``1``), and ``customApnsText`` when it had a
        ``pushcontent``: ``convType`` ``CUSTOM_PERSON`` or ``CUSTOM_TEAM``, ``msgType``
        ``CUSTOM_P2P_MSG`` or ``CUSTOM_TEAM_MSG``.
    """
    event: dict[str, Any]
    if message.msgid is not None:
        kind = -1 if message.type is None else message.type
        event = {
            "eventType": "1",
            "convType": "TEAM" if message.team else "PERSON",
            "fromAccount": message.from_,
            "to": message.to,
            "msgType": _MSG_TYPES.get(kind, str(kind)),
            "body": message.body or "",
            # The page lists msgidClient among the fields "一般情况下必有" (normally
            # present); resendFlag is "0 不是重发": a REST send is never a resend.
            "msgidClient": message.msgid_client,
            "msgidServer": str(message.msgid),
            "msgTimestamp": str(message.timetag),
            "fromClientType": "REST",
            "resendFlag": "0",
        }
    else:
        form = message.form
        event = {
            "eventType": "1",
            "convType": "CUSTOM_TEAM" if message.team else "CUSTOM_PERSON",
            "fromAccount": message.from_,
            "to": message.to,
            "msgType": "CUSTOM_TEAM_MSG" if message.team else "CUSTOM_P2P_MSG",
            "attach": message.attach or "",
            "msgidServer": str(message.notification_id),
            "msgTimestamp": str(message.timetag),
            "fromClientType": "REST",
            # customSafeFlag "是否存离线: 0 不存, 1 存"; sendAttachMsg's save "1 只发在线,
            # 2 会存离线", and without save notifications are stored for offline users
            # (seeds/000).
            "customSafeFlag": "0" if form.get("save") == "1" else "1",
        }
        if "pushcontent" in form:
            # customApnsText "自定义系统通知消息推送文本": the notification's push text.
            # Left out without one: the page warns that not every field is always sent.
            event["customApnsText"] = form["pushcontent"]
    if numbers:
        for field in NUMERIC_FIELDS:
            if field in event:
                event[field] = int(event[field])
    return event


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
