"""What the emulator remembers: requests, messages, uploads and the other records.

These are the public record types a test reads from a `NimEmulator`. They are
plain attrs classes; only `StoredMessage` is mutable, because recall, deletion
and team read receipts change a message after it was stored. A deleted
broadcast is replaced by a copy marked ``deleted``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

__all__ = [
    "Call",
    "NosTask",
    "ReadReceipt",
    "RoamDeletion",
    "StoredBroadcast",
    "StoredMessage",
    "Upload",
]


def _sizes(files: dict[str, bytes]) -> dict[str, str]:
    # Uploads reach 15 MB: a repr (and so a failing assertion) shows sizes, not bytes.
    return {name: f"<{len(content)} bytes>" for name, content in files.items()}


@attrs.frozen
class Call:
    """One HTTP request to the NIM API, as the emulator received and answered it.

    Every request under ``/nimserver/`` is recorded, rejected ones included
    (bad CheckSum, 414, 416, injected faults).

    Attributes:
        action: The action name, the path without ``.action`` (``"msg/sendMsg"``).
        form: The form fields (for multipart bodies: the parts that are not files).
        files: The file parts of a multipart body, by field name.
        headers: The request headers, names in lower case.
        status: The HTTP status of the answer.
        code: The JSON ``code`` of the answer; ``None`` for an HTML answer.
        answer: The decoded JSON answer, or the raw text of an HTML answer.
        at: The emulator's wall clock (seconds) when the request arrived.
    """

    action: str
    form: dict[str, str]
    files: dict[str, bytes] = attrs.field(repr=lambda files: repr(_sizes(files)))
    headers: dict[str, str]
    status: int
    code: int | None
    answer: dict[str, Any] | str
    at: float


@attrs.define
class StoredMessage:
    """A message or custom notification the emulator accepted.

    A batch call stores one `StoredMessage` per delivered (registered) recipient.

    Attributes:
        action: The action that sent it (``"msg/sendMsg"``, ``"msg/sendBatchAttachMsg"``, ...).
        msgid: The message id; ``None`` for custom notifications, which have none.
        timetag: The send time, Unix milliseconds by the emulator's clock.
        from_: The sender's accid.
        to: The recipient's accid, or the team id for a team message.
        team: Whether it went to a team.
        type: The NIM message type (0 text, 1 image, ...); ``None`` for notifications.
        body: The ``body`` form field as sent; ``None`` for notifications.
        attach: The ``attach`` form field as sent; ``None`` for messages.
        form: Every form field of the call that sent it (one dict shared by the
            deliveries of a batch call: read it, do not change it).
        recalled: Set by a successful ``msg/recall``.
        deleted_one_way: Set by a successful ``msg/delMsgOneWay``.
        deleted: Set by a successful ``msg/delMsg``.
        read_by: The accids that marked this team message read (``msg/markReadTeamMsg``).
        notification_id: The server id of a custom notification, the ``msgidServer``
            of its message copy (NIM answers none to the sender); ``None`` for messages.
    """

    action: str
    msgid: int | None
    timetag: int
    from_: str
    to: str
    team: bool
    type: int | None
    body: str | None
    attach: str | None
    form: dict[str, str]
    recalled: bool = False
    deleted_one_way: bool = False
    deleted: bool = False
    read_by: set[str] = attrs.Factory(set)
    notification_id: int | None = None

    @property
    def msgid_client(self) -> str | None:
        """The client-side id history answers give (``msgidclient``): 32 lowercase hex
        digits made from the msgid; ``None`` for custom notifications."""
        if self.msgid is None:
            return None
        # Made, not stored: a million batch deliveries need no million more strings.
        return hashlib.md5(f"msgid-{self.msgid}".encode(), usedforsecurity=False).hexdigest()


@attrs.frozen
class Upload:
    """A file stored by ``msg/upload`` or ``msg/fileUpload``.

    Attributes:
        id: The id in its URL (``/nos/<id>``).
        url: The URL the upload call answered.
        content: The file's bytes.
        type: The ``type`` form field, if given.
        tag: The ``tag`` form field, if given.
        expire_sec: The ``expireSec`` form field, if given; after that many seconds of
            emulator time the URL answers 404.
        https: Whether ``ishttps=true`` was asked for.
        created_at: The emulator's wall clock (seconds) at upload.
    """

    id: str
    url: str
    content: bytes = attrs.field(repr=lambda content: f"<{len(content)} bytes>")  # up to 15 MB
    type: str | None
    tag: str | None
    expire_sec: int | None
    https: bool
    created_at: float


@attrs.frozen
class NosTask:
    """A clean-up task accepted by ``job/nos/del``.

    The emulator carries the task out at once: uploads created within the time
    range whose type contains ``content_type`` and whose tag equals ``tag`` are removed.

    Attributes:
        taskid: The 32-hex-digit task id it answered.
        start_time: ``startTime``, Unix milliseconds.
        end_time: ``endTime``, Unix milliseconds.
        content_type: ``contentType``, if given.
        tag: ``tag``, if given.
        removed: The ids of the uploads the task removed.
        at: The emulator's wall clock (seconds) when it was accepted.
    """

    taskid: str
    start_time: int
    end_time: int
    content_type: str | None
    tag: str | None
    removed: tuple[str, ...]
    at: float


@attrs.frozen
class RoamDeletion:
    """A session whose roaming messages ``msg/delRoamSession`` deleted.

    Attributes:
        from_: The account whose roaming session was deleted.
        to: The other side: an accid, or a team id when ``team``.
        team: Whether it was a team session (``type`` 2 or 3).
        at: The emulator's wall clock (seconds) of the call.
        type: The ``type`` field: 1 p2p, 2 team, 3 super team (``to`` is its tid).
    """

    from_: str
    to: str
    team: bool
    at: float
    type: int


@attrs.frozen
class StoredBroadcast:
    """A broadcast accepted by ``msg/broadcastMsg``.

    Attributes:
        broadcast_id: The ``broadcastId`` it answered.
        body: The broadcast text.
        from_: The sender's accid, if given.
        is_offline: Whether it is stored for offline users.
        ttl_hours: How long it is kept offline, in hours.
        target_os: The client platforms it targets.
        create_time: Unix milliseconds by the emulator's clock.
        expire_time: ``create_time`` plus ``ttl_hours``, Unix milliseconds.
        deleted: Set (on a copy that replaces it) by ``history/delBroadcastMsgById``.
    """

    broadcast_id: int
    body: str
    from_: str | None
    is_offline: bool
    ttl_hours: int
    target_os: tuple[str, ...]
    create_time: int
    expire_time: int
    deleted: bool = False


@attrs.frozen
class ReadReceipt:
    """A read receipt accepted by ``msg/markReadMsg`` (p2p) or ``msg/markReadTeamMsg``.

    Attributes:
        action: ``"msg/markReadMsg"`` or ``"msg/markReadTeamMsg"``.
        reader: The account that read: ``from`` (p2p) or ``accid`` (team).
        to: The original sender's accid (p2p), or the team id (team).
        team: Whether it is a team read receipt.
        msgid_client: The client-side message id (``msgidClient``), p2p only.
        msgids: The server message ids marked read, team only (each such stored
            message has ``reader`` in its ``read_by``).
        failed: The team msgids that could not be marked (the answer's ``errMsgIds``).
        timestamp: Unix milliseconds by the emulator's clock (p2p: the answer's
            ``data.timestamp``).
    """

    action: str
    reader: str
    to: str
    team: bool
    msgid_client: str | None
    msgids: tuple[int, ...]
    failed: tuple[int, ...]
    timestamp: int
