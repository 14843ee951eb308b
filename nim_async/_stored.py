"""NimClient's endpoints on what the service stores: files, and messages already sent.

upload, file_upload and clean_nos_files; recall, delete_msg_one_way, delete_msg,
delete_roam_session, delete_broadcast; the read receipts mark_read_msg and
mark_read_team_msg; the one-to-one cloud history, query_session_msg. Each is a
thin function that ``NimClient``'s class body names as a method (``recall =
_stored.recall``): the client is one class, and this module keeps
``_client.py`` readable. Like every endpoint, each hands its
arguments whole (``locals()``) with its spec to the pipeline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from ._base import BaseClient
from ._endpoints import (
    CLEAN_NOS,
    DEL_BROADCAST,
    DEL_MSG,
    DEL_MSG_ONE_WAY,
    DEL_ROAM_SESSION,
    FILE_UPLOAD,
    MARK_READ,
    MARK_TEAM_READ,
    QUERY_SESSION_MSG,
    RECALL,
    UPLOAD,
)
from ._models import Push, SessionHistory
from ._uploads import FileContent

__all__ = [
    "clean_nos_files",
    "delete_broadcast",
    "delete_msg",
    "delete_msg_one_way",
    "delete_roam_session",
    "file_upload",
    "mark_read_msg",
    "mark_read_team_msg",
    "query_session_msg",
    "recall",
    "upload",
]


async def upload(
    self: BaseClient,
    content: bytes,
    *,
    type: str | None = None,
    https: bool | None = None,
    expire_sec: int | None = None,
    tag: str | None = None,
) -> str:
    """Upload a file as base64 in a form field (msg/upload) and return its URL.

    Args:
        content: The file's bytes, at most 15 MB.
        type: The file's type, at most 128 characters (``type``), e.g. ``"jpg"`` or
            ``"image/png"``.
        https: Return an https URL (``ishttps``; server default false).
        expire_sec: Seconds until the file expires, at least 86400 (``expireSec``).
        tag: The file's use, at most 32 characters (``tag``); used by
            `clean_nos_files`.

    Returns:
        The file's URL.

    Raises:
        InvalidRequest: Over 15 MB, or a parameter breaks its limit; nothing was sent.
        NimAPIError: An error answer.
    """
    return await self._open_pipeline().call(UPLOAD, locals())


async def file_upload(
    self: BaseClient,
    content: FileContent,
    *,
    type: str | None = None,
    https: bool | None = None,
    expire_sec: int | None = None,
    tag: str | None = None,
) -> str:
    """Upload a file as multipart form data (msg/fileUpload) and return its URL.

    The file is streamed, not read into memory; a seekable file object is
    rewound to where it was for a retry.

    Args:
        content: Bytes, a path, or a binary file object, at most 15 MB.
        type: The file's type (``type``).
        https: Return an https URL (``ishttps``).
        expire_sec: Seconds until the file expires, at least 86400 (``expireSec``).
        tag: The file's use, at most 32 characters (``tag``).

    Returns:
        The file's URL.

    Raises:
        InvalidRequest: Over 15 MB, a path that is not a readable file, a
            closed file object, or a parameter breaks its limit; nothing was sent.
        NimAPIError: An error answer.
    """
    return await self._open_pipeline().call(FILE_UPLOAD, locals())


async def clean_nos_files(
    self: BaseClient,
    start: dt.datetime | int,
    end: dt.datetime | int,
    *,
    content_type: str | None = None,
    tag: str | None = None,
) -> str:
    """Ask the server to delete uploaded files from a time range (job/nos/del).

    The seed's rules: ``start < end``, the span between 1 and 7 days, and
    ``end`` before today (China time). The server limits tasks per day.

    Args:
        start: The range's start: a datetime (naive means local time) or
            epoch milliseconds (``startTime``).
        end: The range's end, likewise (``endTime``).
        content_type: Delete files whose type contains this, e.g. ``"image"``
            (``contentType``).
        tag: Delete files uploaded with exactly this tag (``tag``).

    Returns:
        The clean-up task's id.

    Raises:
        InvalidRequest: The range breaks a rule; nothing was sent.
        NimAPIError: An error answer.
    """
    return await self._open_pipeline().call(CLEAN_NOS, locals())


async def recall(
    self: BaseClient,
    msgid: int | str,
    timetag: int,
    *,
    from_: str,
    to: str,
    team: bool = False,
    msg: str | None = None,
    ignore_time: bool = False,
    push: Push | None = None,
    env: str | None = None,
    attach: str | Mapping[str, Any] | None = None,
) -> None:
    """Recall a message for both sides (msg/recall).

    Args:
        msgid: The message id from ``send_msg`` (``deleteMsgid``).
        timetag: The message's timetag from ``send_msg`` (``timetag``).
        from_: The message's sender (``from``).
        to: Its receiver, or its team id with ``team=True`` (``to``).
        team: A team message (``type=8``) instead of one-to-one (``type=7``).
        msg: A description of the recall, at most 128 characters (``msg``).
        ignore_time: Skip the recall window (``ignoreTime=1``); messages up to
            30 days old.
        push: Push text and payload; the server cuts text past 500 characters.
        env: The message-copy environment (``env``).
        attach: Extension field, at most 5000 characters (``attach``).

    Raises:
        InvalidRequest: A parameter breaks a documented limit; nothing was sent.
        RecallExpired: The message is older than the recall window (2 minutes
            by default).
        NimAPIError: Any other error answer.
    """
    await self._open_pipeline().call(RECALL, locals())


async def delete_msg_one_way(
    self: BaseClient,
    msgid: int | str,
    timetag: int,
    *,
    from_: str,
    to: str,
    team: bool = False,
    msg: str | None = None,
) -> None:
    """Delete a message for its receivers only (msg/delMsgOneWay).

    The receivers get a one-way recall notice and lose their offline,
    roaming and history copies; the sender keeps everything.

    Args:
        msgid: The message id (``deleteMsgid``).
        timetag: The message's timetag (``timetag``).
        from_: The message's sender (``from``).
        to: Its receiver, or its team id with ``team=True`` (``to``).
        team: A team message (``type=14``) instead of one-to-one (``type=13``).
        msg: A description, at most 128 characters (``msg``).

    Raises:
        InvalidRequest: A parameter breaks a documented limit; nothing was sent.
        NimAPIError: An error answer.
    """
    await self._open_pipeline().call(DEL_MSG_ONE_WAY, locals())


async def delete_roam_session(
    self: BaseClient, from_: str, to: str, *, team: bool = False, super_team: bool = False
) -> None:
    """Delete the roaming messages of one session (msg/delRoamSession).

    Args:
        from_: The account whose roaming copy goes (``from``).
        to: The other side's accid, or the team id with ``team`` or ``super_team``.
        team: A team session (``type=2``) instead of one-to-one (``type=1``).
        super_team: A super team session (``type=3``; Java SDK
            DeleteRoamSessionRequestV1 "3-超大群"). Not together with ``team``.

    Raises:
        InvalidRequest: A parameter breaks a documented limit; nothing was sent.
        NimAPIError: An error answer.
    """
    await self._open_pipeline().call(DEL_ROAM_SESSION, locals())


async def delete_msg(
    self: BaseClient,
    msgid: int | str,
    timetag: int,
    *,
    from_: str,
    to: str,
    team: bool = False,
) -> None:
    """Delete one message from the cloud history of both sides (msg/delMsg).

    Parameters as the Java SDK's DeleteMessageRequestV1 has them.

    Args:
        msgid: The message id (``deleteMsgid``).
        timetag: The message's timetag (``timetag``).
        from_: The message's sender (``from``).
        to: Its receiver, or its team id with ``team=True`` (``to``).
        team: A team message (``type=8``) instead of one-to-one (``type=7``).

    Raises:
        InvalidRequest: A parameter breaks its rule; nothing was sent.
        NimAPIError: An error answer.
    """
    await self._open_pipeline().call(DEL_MSG, locals())


async def delete_broadcast(self: BaseClient, broadcast_id: int) -> None:
    """Delete one broadcast by its id (history/delBroadcastMsgById).

    Args:
        broadcast_id: The id ``broadcast`` returned (``broadcastId``).

    Raises:
        InvalidRequest: Not an int within 64 bits; nothing was sent.
        NimAPIError: An error answer.
    """
    await self._open_pipeline().call(DEL_BROADCAST, locals())


async def mark_read_msg(self: BaseClient, from_: str, to: str, msgid_client: str) -> int:
    """Send a read receipt for a one-to-one message (msg/markReadMsg).

    Parameters as the Java SDK's MarkReadMessageRequestV1 has them.

    Args:
        from_: The reader's accid (``from``).
        to: The accid of the message's sender (``to``).
        msgid_client: The message's client-side id (``msgidClient``).

    Returns:
        When the server marked it read, in epoch milliseconds (``data.timestamp``).

    Raises:
        InvalidRequest: A parameter breaks its rule; nothing was sent.
        NimAPIError: An error answer.
    """
    return await self._open_pipeline().call(MARK_READ, locals())


async def mark_read_team_msg(
    self: BaseClient, accid: str, tid: int, msgids: Iterable[int]
) -> list[int]:
    """Send read receipts for team messages (msg/markReadTeamMsg).

    Parameters as the Java SDK's MarkReadTeamMessageRequestV1 has them.

    Args:
        accid: The reader's accid (``accid``).
        tid: The team id (``tid``).
        msgids: The server message ids read (``msgids``, a JSON array).

    Returns:
        The ids the server could not mark (``data.errMsgIds``); empty when all were.

    Raises:
        InvalidRequest: A parameter breaks its rule; nothing was sent.
        NimAPIError: An error answer.
    """
    return await self._open_pipeline().call(MARK_TEAM_READ, locals())


async def query_session_msg(
    self: BaseClient,
    from_: str,
    to: str,
    *,
    begin: dt.datetime | int,
    end: dt.datetime | int,
    limit: int = 100,
    ascending: bool = False,
    types: Iterable[int] | None = None,
    include_no_sense: bool = False,
    exclude_msgid: int | str | None = None,
) -> SessionHistory:
    """Read one page of the cloud history of a one-to-one session (history/querySessionMsg).

    Parameters as NetEase's doc page "查询单聊云端历史消息" and the Java SDK's
    QuerySessionHistoryMessageRequestV1 have them. The page holds the messages
    of both directions, ``from_`` to ``to`` and ``to`` to ``from_``, sent between
    ``begin`` and ``end``. The server offers no page token: for the next page,
    ask again with the time of the page's last message as the new ``end``
    (``begin`` when ``ascending``) and its msgid as ``exclude_msgid``, so that
    messages sharing that millisecond are neither lost nor repeated.

    A query changes nothing, so it is retried after an ambiguous failure.
    NetEase's doc page gives it the default frequency control of 100 calls/s
    per app, blocked 10 s after a breach; ``RateLimits.default()`` applies that.

    Args:
        from_: One side of the session (``from``).
        to: The other side (``to``).
        begin: The range's start: a datetime (naive means local time) or
            epoch milliseconds (``begintime``).
        end: The range's end, likewise, after ``begin`` (``endtime``).
        limit: At most this many messages, 1 to 100 (``limit``).
        ascending: Oldest first (``reverse=1``); by default newest first, the
            server's default (``reverse=2``).
        types: Only these message types, e.g. ``[0, 100]``: 0 text, 1 image,
            2 audio, 3 video, 4 location, 5 notification, 6 file, 10 tip,
            11 robot, 100 custom (``type``, comma-separated); None: every type.
        include_no_sense: Include the messages the server calls "no sense":
            sent with ``sender_no_sense`` or ``receiver_no_sense``, or recalled
            or deleted one way (``includeNoSenseMsg``; server default false).
            Messages recalled or deleted for both sides never come back.
        exclude_msgid: The msgid of the previous page's last message; the page
            starts after it (``excludeMsgid``).

    Returns:
        The page: ``size`` and the messages, in the order asked for.

    Raises:
        InvalidRequest: A parameter breaks its rule (``end`` not after ``begin``,
            ``limit`` outside 1 to 100, an unknown type); nothing was sent.
        NimAPIError: An error answer.
        MalformedAnswer: Code 200 with messages that cannot be read.
    """
    return await self._open_pipeline().call(QUERY_SESSION_MSG, locals())
