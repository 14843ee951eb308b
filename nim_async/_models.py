"""Message bodies, options and results: frozen attrs classes.

The bodies follow NetEase's "消息格式示例" (message format examples): each knows
its NIM ``type`` code and turns itself into the JSON object that goes in the ``body`` field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

__all__ = [
    "Body",
    "Broadcast",
    "Custom",
    "File",
    "HistoryMessage",
    "Image",
    "Location",
    "MessageOption",
    "Push",
    "SendResult",
    "SessionHistory",
    "Text",
    "Tip",
    "Video",
    "Voice",
]


class Body:
    """Base class of the message bodies.

    Attributes:
        type: The NIM message type code, fixed by the class: 0 text, 1 image,
            2 voice, 3 video, 4 location, 6 file, 10 tip, 100 custom.
    """

    __slots__ = ()
    __attrs_attrs__: ClassVar[tuple[attrs.Attribute[Any], ...]]
    type: ClassVar[int]

    def to_json(self) -> Any:
        """Return the JSON object that goes in the ``body`` form field (unset fields left out)."""
        # Text and numbers (Custom has its own): nothing for attrs.asdict to recurse into.
        return {
            field.name: value
            for field in self.__attrs_attrs__
            if (value := getattr(self, field.name)) is not None
        }


@attrs.frozen
class Text(Body):
    """A text message (type 0).

    Args:
        msg: The text (at most 5000 characters, as NetEase's 消息功能 page sets ``body``).
    """

    type: ClassVar[int] = 0
    msg: str


@attrs.frozen
class Image(Body):
    """An image message (type 1): the file's URL, md5, suffix, size in pixels and bytes.

    Args:
        url: Where the image is stored (for example, what `NimClient.upload` returned).
        md5: The md5 of the image file, hex.
        ext: The file's suffix, such as ``"jpg"``.
        w: Width in pixels.
        h: Height in pixels.
        size: The file's size in bytes.
        name: The image's name, if any.
    """

    type: ClassVar[int] = 1
    url: str
    md5: str
    ext: str
    w: int
    h: int
    size: int
    name: str | None = None


@attrs.frozen
class Voice(Body):
    """A voice message (type 2); NetEase's 消息格式示例 (message format examples) allows only aac.

    Args:
        url: Where the audio file is stored.
        md5: The md5 of the file, hex.
        dur: Its duration in milliseconds.
        size: The file's size in bytes.
        ext: The file's suffix: ``"aac"``.
    """

    type: ClassVar[int] = 2
    url: str
    md5: str
    dur: int
    size: int
    ext: str = "aac"


@attrs.frozen
class Video(Body):
    """A video message (type 3).

    Args:
        url: Where the video file is stored.
        md5: The md5 of the file, hex.
        dur: Its duration in milliseconds.
        w: Width in pixels.
        h: Height in pixels.
        size: The file's size in bytes.
        ext: The file's suffix, such as ``"mp4"``.
    """

    type: ClassVar[int] = 3
    url: str
    md5: str
    dur: int
    w: int
    h: int
    size: int
    ext: str


@attrs.frozen
class Location(Body):
    """A location message (type 4).

    Args:
        title: The place's name or address, as shown.
        lng: Longitude, degrees.
        lat: Latitude, degrees.
    """

    type: ClassVar[int] = 4
    title: str
    lng: float
    lat: float


@attrs.frozen
class File(Body):
    """A file message (type 6).

    Args:
        url: Where the file is stored.
        md5: The md5 of the file, hex.
        name: The file's name, as shown.
        ext: The file's suffix, such as ``"pdf"``.
        size: The file's size in bytes.
    """

    type: ClassVar[int] = 6
    url: str
    md5: str
    name: str
    ext: str
    size: int


@attrs.frozen
class Tip(Body):
    """A tip message (type 10), shown in the conversation as a notice.

    Args:
        msg: The notice's text.
    """

    type: ClassVar[int] = 10
    msg: str


@attrs.frozen
class Custom(Body):
    """A custom message (type 100).

    Args:
        data: Any JSON-able value: it is the ``body`` as sent.
    """

    type: ClassVar[int] = 100
    data: Any

    def to_json(self) -> Any:
        """Return ``data`` itself: a custom body is the app's own JSON."""
        return self.data


# Python keyword → the key NIM reads inside the ``option`` JSON (seed, sendMsg "option").
_OPTION_KEYS = {
    "roam": "roam",
    "history": "history",
    "sendersync": "sendersync",
    "push": "push",
    "route": "route",
    "badge": "badge",
    "need_push_nick": "needPushNick",
    "persistent": "persistent",
    "session_update": "sessionUpdate",
}


@attrs.frozen
class MessageOption:
    """The ``option`` of a message: each field None leaves the server default, and is not sent.

    System notifications (``send_attach_msg`` and the batch variant) read only
    ``badge``, ``need_push_nick`` and ``route``.

    Args:
        roam: Keep the message for roaming (default true).
        history: Keep it in the cloud history (default true).
        sendersync: Sync it to the sender's other devices (default true).
        push: Send an APNs / notification-bar push (default true).
        route: Copy it to the app's server (default true).
        badge: Count it as unread (default true).
        need_push_nick: Put the sender's nickname in the push (default true for
            messages, false for system notifications).
        persistent: Keep it as an offline message (default true).
        session_update: Make it the session's last message (default true).
    """

    roam: bool | None = None
    history: bool | None = None
    sendersync: bool | None = None
    push: bool | None = None
    route: bool | None = None
    badge: bool | None = None
    need_push_nick: bool | None = None
    persistent: bool | None = None
    session_update: bool | None = None

    def to_json(self) -> dict[str, bool]:
        """Return the ``option`` JSON object holding only the fields that are set."""
        return {
            key: value
            for name, key in _OPTION_KEYS.items()
            if (value := getattr(self, name)) is not None
        }


@attrs.frozen
class Push:
    """The push notification of a message: its text and its payload.

    Args:
        content: ``pushcontent``, the text shown (at most 500 characters).
        payload: ``payload``, a JSON object handed to the app (at most 2048
            characters as JSON).
    """

    content: str | None = None
    payload: Mapping[str, Any] | None = None


@attrs.frozen
class SendResult:
    """What the server answered to ``send_msg``.

    Attributes:
        msgid: The message id; keep it with ``timetag`` to recall the message.
        timetag: When the server stored the message, in epoch milliseconds.
        antispam: Whether the anti-spam check flagged the message.
    """

    msgid: int
    timetag: int
    antispam: bool = False


@attrs.frozen
class Broadcast:
    """What the server answered to ``broadcast``.

    Attributes:
        broadcast_id: The id of the broadcast.
        body: The text that was broadcast.
        create_time: When it was created, in epoch milliseconds.
        expire_time: When its offline copy expires, in epoch milliseconds (None if not kept).
        is_offline: Whether it is kept for offline users.
        target_os: The client platforms it was sent to.
        from_: The sender's accid, when one was given.
    """

    broadcast_id: int
    body: str
    create_time: int
    expire_time: int | None = None
    is_offline: bool = False
    target_os: tuple[str, ...] = ()
    from_: str | None = None


@attrs.frozen
class HistoryMessage:
    """One message of the cloud history, as ``query_session_msg`` read it.

    The fields of the Java SDK's history ``Message`` (yunxin-server-sdk-java).

    Attributes:
        from_: The sender's accid (``from``).
        msgid: The server's message id (``msgid``); pass the last one of a page
            as ``exclude_msgid`` to fetch the next page.
        msgid_client: The client-side message id (``msgidclient``), None if absent.
        sendtime: When it was sent, in epoch milliseconds (``sendtime``).
        type: The NIM message type: 0 text, 1 image, 2 audio, 3 video,
            4 location, 5 notification, 6 file, 10 tip, 11 robot, 100 custom.
        from_client_type: The sender's client type (``fromclienttype``): 1 Android,
            2 iOS, 4 PC, 16 web, 32 REST (the server API), 64 macOS; None if absent.
        body: The message body as JSON text (``body``); an object the server
            sends is turned back into JSON text, as the official SDKs do. None if absent.
    """

    from_: str
    msgid: int
    msgid_client: str | None
    sendtime: int
    type: int
    from_client_type: int | None
    body: str | None


@attrs.frozen
class SessionHistory:
    """What the server answered to ``query_session_msg``: one page of a session's history.

    Attributes:
        size: The number of messages the server reports (``size``).
        messages: The messages, in the order asked for (newest first by default).
    """

    size: int
    messages: tuple[HistoryMessage, ...] = ()
