"""NimClient: one thin, documented method per NIM endpoint.

Each method hands its arguments whole (``locals()``) with its endpoint's spec
to the pipeline: the spec in ``_endpoints`` maps every keyword to its NIM
parameter, so the method holds no second copy of that mapping. The class is
whole here: the sending methods, then those on what the service stores
(files, messages already sent, read receipts, the cloud history), then the
bulk-job helpers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from ._base import (
    CHINA_URL,
    DEFAULT_MAX_CONCURRENCY,
    MAX_BATCH_SIZE,
    MSGID_BATCH_SIZE,
    OVERSEAS_URL,
    YUNXIN_CN_URLS,
    YUNXIN_SG_URLS,
    BaseClient,
)
from ._bulk import Recipients, send_in_chunks
from ._config import int_between, refuse
from ._endpoints import (
    BROADCAST,
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
    SEND_ATTACH_MSG,
    SEND_BATCH_ATTACH_MSG,
    SEND_BATCH_MSG,
    SEND_MSG,
    UPLOAD,
)
from ._models import Body, Broadcast, MessageOption, Push, SendResult, SessionHistory
from ._reconcile import DEFAULT_GRACE as DEFAULT_RECONCILE_GRACE
from ._reconcile import reconcile
from ._results import BatchEstimate, BatchJob, BatchResult, Progress
from ._uploads import FileContent
from ._validate import MAX_BATCH_ATTACH_RECIPIENTS

__all__ = ["CHINA_URL", "OVERSEAS_URL", "YUNXIN_CN_URLS", "YUNXIN_SG_URLS", "NimClient"]


class NimClient(BaseClient):
    """An asyncio client for NIM's message API, with one connection pool.

    Create it inside the running event loop (in a FastAPI lifespan, not at
    import time): its connections belong to the loop that first uses them.
    Use it as ``async with NimClient(...) as client:`` or call `aclose`.

    Args:
        app_key: The app's AppKey.
        app_secret: The app's AppSecret; it never appears in a repr, log or error.
        base_url: ``CHINA_URL`` (default), ``OVERSEAS_URL``, an emulator's URL, or
            an ordered sequence of them (``YUNXIN_CN_URLS``, ``YUNXIN_SG_URLS``):
            the next is tried only when the current one cannot be reached at all.
        rate_limits: The client-side budget per action; None turns limiting off.
        limiter: Where the budget's state lives; None is the process-wide
            ``LocalLimiter`` every such client shares.
        retry: What to retry and how long to wait.
        timeout: Seconds for each phase of a request, or an ``httpx.Timeout``.
        max_connections: The connection pool's size.
        batch_size: Recipients per batch call (at most 100 when msg ids are asked for).
        transport: Any ``httpx.AsyncBaseTransport``, e.g. ``NimEmulator.transport()``
            or ``httpx.AsyncHTTPTransport()``. None: aiohttp's connection pool
            behind httpx's interface (a fraction of httpcore's CPU per call),
            with httpx's TLS defaults and the environment's ``HTTP_PROXY``,
            ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` read as httpx reads them.
        max_wait: The longest a call waits for its rate-limit slot, in seconds
            (``DEFAULT_MAX_WAIT``, 10 s); a slot known to come later fails the
            call at once with ``SlotTimeout``. None waits as long as the budget needs.
        verify: The TLS context that checks NIM's certificate, for the default
            transport (a transport of your own brings its own). None: certifi's
            certificate authorities, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``.

    Raises:
        ConfigurationError: An argument of the wrong type or out of range.
    """

    async def send_msg(
        self,
        from_: str,
        to: str,
        body: Body,
        *,
        team: bool = False,
        option: MessageOption | None = None,
        push: Push | None = None,
        msg_desc: str | None = None,
        antispam: bool | None = None,
        antispam_custom: Mapping[str, Any] | None = None,
        ext: str | Mapping[str, Any] | None = None,
        force_push_list: Iterable[str] | None = None,
        force_push_content: str | None = None,
        force_push_all: bool | None = None,
        bid: str | None = None,
        use_yidun: Literal[False] | None = None,
        yidun_anti_cheating: Mapping[str, Any] | None = None,
        mark_read: bool | None = None,
        check_friend: bool | None = None,
        sub_type: int | None = None,
        sender_no_sense: bool | None = None,
        receiver_no_sense: bool | None = None,
        env: str | None = None,
        yidun_anti_spam_ext: Mapping[str, Any] | None = None,
        async_: bool | None = None,
        robot_account: str | None = None,
        robot_topic: str | None = None,
        robot_function: str | None = None,
        robot_custom_content: str | None = None,
    ) -> SendResult:
        """Send a message to a user, or to a team with ``team=True`` (msg/sendMsg).

        Args:
            from_: The sender's accid.
            to: The receiver's accid, or the team id with ``team=True``.
            body: ``Text``, ``Image``, ``Voice``, ``Video``, ``Location``, ``File``,
                ``Tip`` or ``Custom``; its class gives the NIM ``type``.
            team: Send to a team (``ope=1``) instead of a user (``ope=0``).
            option: Roaming, history, push, ... (``option``).
            push: Push text and payload (``pushcontent``, ``payload``).
            msg_desc: Searchable description of a non-text message (``msgDesc``).
            antispam: Check ``antispam_custom`` instead of the body (custom messages).
            antispam_custom: ``{"type": 1 or 2, "data": str}`` (``antispamCustom``).
            ext: The app's extension field (``ext``).
            force_push_list: Team members to push to even if muted (``forcepushlist``).
            force_push_content: Their push text (``forcepushcontent``).
            force_push_all: Push to every member but the sender (``forcepushall``).
            bid: Anti-spam business id (``bid``).
            use_yidun: False sends ``useYidun=0``: use the general anti-spam.
            yidun_anti_cheating: Yidun anti-cheating data (``yidunAntiCheating``).
            mark_read: Team read receipts (``markRead``).
            check_friend: Send only between friends (``checkFriend``).
            sub_type: The app's message subtype, > 0 (``subType``).
            sender_no_sense: The sender keeps no copy (``msgSenderNoSense``).
            receiver_no_sense: The receiver keeps no copy (``msgReceiverNoSense``).
            env: The message-copy environment (``env``).
            yidun_anti_spam_ext: Yidun anti-spam extension, JSON ≤ 1024 (``yidunAntiSpamExt``).
            async_: Let the server send it asynchronously (``async``).
            robot_account: The robot the team message is for (``robotAccount``).
            robot_topic: The robot's topic (``robotTopic``).
            robot_function: The robot's function (``robotFunction``).
            robot_custom_content: Custom content for the robot (``robotCustomContent``).

        Returns:
            The message id, its timetag and the anti-spam flag.

        Raises:
            InvalidRequest: A parameter breaks a documented limit; nothing was sent.
            NotFound: The receiver or team does not exist.
            NimAPIError: Any other error answer.
            NimConnectionError: No answer came back. A send is not retried once
                the request may have reached the server, unless ``RetryPolicy``
                says ``retry_ambiguous=True``.
        """
        return await self._open_pipeline().call(SEND_MSG, locals())

    async def send_batch_msg(
        self,
        from_: str,
        to: Recipients,
        body: Body,
        *,
        return_msgid: bool = False,
        option: MessageOption | None = None,
        push: Push | None = None,
        msg_desc: str | None = None,
        ext: str | Mapping[str, Any] | None = None,
        bid: str | None = None,
        use_yidun: Literal[False] | None = None,
        yidun_anti_cheating: Mapping[str, Any] | None = None,
        env: str | None = None,
        yidun_anti_spam_ext: Mapping[str, Any] | None = None,
        sender_no_sense: bool | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        on_progress: Callable[[Progress], object] | None = None,
        job: BatchJob | None = None,
    ) -> BatchResult:
        """Send one message to many users (msg/sendBatchMsg), chunked for you.

        ``to`` may be any iterable or async iterable of accids, of any length;
        it is read lazily and sent in chunks of the client's ``batch_size``
        (500), or 100 with ``return_msgid=True``, ``max_concurrency`` at once.

        Args:
            from_: The sender's accid (``fromAccid``).
            to: The receivers' accids (``toAccids``, chunked).
            body: The message body; its class gives the NIM ``type``.
            return_msgid: Ask for each receiver's message id (``returnMsgid``).
            option: Roaming, history, push, ... (``option``).
            push: Push text and payload (``pushcontent``, ``payload``).
            msg_desc: Searchable description of a non-text message (``msgDesc``).
            ext: The app's extension field (``ext``).
            bid: Anti-spam business id (``bid``).
            use_yidun: False sends ``useYidun=0``: use the general anti-spam.
            yidun_anti_cheating: Yidun anti-cheating data (``yidunAntiCheating``).
            env: The message-copy environment (``env``).
            yidun_anti_spam_ext: Yidun anti-spam extension, JSON ≤ 1024 (``yidunAntiSpamExt``).
            sender_no_sense: The sender keeps no copy (``msgSenderNoSense``).
            max_concurrency: Batch calls in flight at once.
            on_progress: Called with a ``Progress`` after every chunk.
            job: A ``BatchJob`` that records outcomes as they come, so that they
                are known even if this call is cancelled.

        Returns:
            The merged result: every receiver is accepted, in ``unregister``, or
            in a ``FailedChunk``; with ``return_msgid`` each one's message id
            and timetag (``msgids``, ``timetags``), enough to recall it.

        Raises:
            InvalidRequest: A parameter breaks a documented limit (nothing was sent),
                or a list holds a bad accid (checked whole before sending).
        """
        chunk_size = min(self.batch_size, MSGID_BATCH_SIZE) if return_msgid else self.batch_size
        return await send_in_chunks(
            self._open_pipeline(), SEND_BATCH_MSG, locals(), chunk_size=chunk_size
        )

    async def send_attach_msg(
        self,
        from_: str,
        to: str,
        attach: str | Mapping[str, Any],
        *,
        team: bool = False,
        offline: bool | None = None,
        push: Push | None = None,
        sound: str | None = None,
        option: MessageOption | None = None,
        force_push: bool | None = None,
        force_push_content: str | None = None,
        force_push_all: bool | None = None,
        force_push_list: Iterable[str] | None = None,
        env: str | None = None,
        check_accid_async: bool | None = None,
    ) -> None:
        """Send a custom system notification to a user or a team (msg/sendAttachMsg).

        Args:
            from_: The sender's accid.
            to: The receiver's accid, or the team id with ``team=True``.
            attach: The notification: a string, or a mapping sent as JSON (at most
                4096 characters).
            team: Notify a team (``msgtype=1``) instead of a user (``msgtype=0``).
            offline: True keeps it for offline users (``save=2``, the server's
                default); False delivers it only to online users (``save=1``).
            push: Push text and payload (``pushcontent``, ``payload``).
            sound: The client's sound file for the push (``sound``).
            option: Only ``badge``, ``need_push_nick`` and ``route`` apply.
            force_push: Force the push (``isForcePush``).
            force_push_content: The forced push's text (``forcePushContent``).
            force_push_all: Force-push every team member but the sender (``forcePushAll``).
            force_push_list: Team members to force-push, at most 100 (``forcePushList``).
            env: The message-copy environment (``env``).
            check_accid_async: Check the accounts asynchronously (``checkAccidAsyncEnable``).

        Raises:
            InvalidRequest: A parameter breaks a documented limit; nothing was sent.
            NotFound: The receiver or team does not exist.
            NimAPIError: Any other error answer.
            NimConnectionError: No answer came back.
        """
        await self._open_pipeline().call(SEND_ATTACH_MSG, locals())

    async def send_batch_attach_msg(
        self,
        from_: str,
        to: Recipients,
        attach: str | Mapping[str, Any],
        *,
        offline: bool | None = None,
        push: Push | None = None,
        sound: str | None = None,
        option: MessageOption | None = None,
        force_push: bool | None = None,
        force_push_content: str | None = None,
        env: str | None = None,
        check_accid_async: bool | None = None,
        batch_size: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        on_progress: Callable[[Progress], object] | None = None,
        job: BatchJob | None = None,
    ) -> BatchResult:
        """Send one notification to many users (msg/sendBatchAttachMsg), chunked for you.

        ``to`` may be any iterable or async iterable of accids, of any length;
        it is read lazily and sent in chunks of ``batch_size`` (the client's,
        500 by default; this action alone takes up to 5000 per call),
        ``max_concurrency`` at once.

        Args:
            from_: The sender's accid (``fromAccid``).
            to: The receivers' accids (``toAccids``, chunked).
            attach: The notification: a string, or a mapping sent as JSON (≤ 4096).
            offline: True keeps it for offline users (``save=2``); False online only.
            push: Push text and payload (``pushcontent``, ``payload``).
            sound: The client's sound file for the push (``sound``).
            option: Only ``badge``, ``need_push_nick`` and ``route`` apply.
            force_push: Force the push (``isForcePush``).
            force_push_content: The forced push's text (``forcePushContent``).
            env: The message-copy environment (``env``).
            check_accid_async: Check the accounts asynchronously; the answer then
                reports no unregistered accounts (``checkAccidAsyncEnable``).
            batch_size: Recipients per call for this send, 1 to 5000 (Java SDK
                SendBatchAttachMsgRequestV1 "最多 5000 人"); None: the client's.
            max_concurrency: Batch calls in flight at once.
            on_progress: Called with a ``Progress`` after every chunk.
            job: A ``BatchJob`` that records outcomes as they come, so that they
                are known even if this call is cancelled.

        Returns:
            The merged result: every receiver is accepted, in ``unregister``, or
            in a ``FailedChunk``.

        Raises:
            InvalidRequest: A parameter breaks a documented limit (nothing was sent),
                or a list holds a bad accid (checked whole before sending).
        """
        chunk_size = self.batch_size if batch_size is None else batch_size
        int_between("batch_size", chunk_size, 1, MAX_BATCH_ATTACH_RECIPIENTS)
        return await send_in_chunks(
            self._open_pipeline(), SEND_BATCH_ATTACH_MSG, locals(), chunk_size=chunk_size
        )

    async def broadcast(
        self,
        body: str,
        *,
        from_: str | None = None,
        offline: bool | None = None,
        ttl_hours: int | None = None,
        target_os: Iterable[str] | None = None,
    ) -> Broadcast:
        """Broadcast a message to every user of the app (msg/broadcastMsg).

        The server allows 10 calls a minute and 1000 a day; the feature must be
        enabled for the app.

        Args:
            body: The text, at most 4096 characters (``body``).
            from_: The sender's accid (``from``).
            offline: Keep it for offline users (``isOffline``; server default false).
            ttl_hours: How long the offline copy lives, in hours (``ttl``; default 7 days).
            target_os: Platforms among ios, aos, pc, web, mac (``targetOs``; default all).

        Returns:
            The broadcast as the server stored it.

        Raises:
            InvalidRequest: A parameter breaks a documented limit; nothing was sent.
            NimAPIError: An error answer. A broadcast is never retried once it may
                have reached the server, unless ``retry_ambiguous=True``.
        """
        return await self._open_pipeline().call(BROADCAST, locals())

    async def upload(
        self,
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
        self,
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
        self,
        start: dt.datetime | int,
        end: dt.datetime | int,
        *,
        content_type: str | None = None,
        tag: str | None = None,
    ) -> str:
        """Ask the server to delete uploaded files from a time range (job/nos/del).

        NetEase's server API documentation sets the rules: ``start < end``, the
        span between 1 and 7 days, and ``end`` before today (China time). The
        server limits tasks per day.

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
        self,
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
        self,
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

    async def delete_msg(
        self,
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

    async def delete_roam_session(
        self, from_: str, to: str, *, team: bool = False, super_team: bool = False
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

    async def delete_broadcast(self, broadcast_id: int) -> None:
        """Delete one broadcast by its id (history/delBroadcastMsgById).

        Args:
            broadcast_id: The id ``broadcast`` returned (``broadcastId``).

        Raises:
            InvalidRequest: Not an int within 64 bits; nothing was sent.
            NimAPIError: An error answer.
        """
        await self._open_pipeline().call(DEL_BROADCAST, locals())

    async def mark_read_msg(self, from_: str, to: str, msgid_client: str) -> int:
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

    async def mark_read_team_msg(self, accid: str, tid: int, msgids: Iterable[int]) -> list[int]:
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
        self,
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

    def estimate_batch(
        self,
        method: str,
        recipients: int,
        *,
        return_msgid: bool = False,
        batch_size: int | None = None,
    ) -> BatchEstimate:
        """How many calls a bulk send needs, and how long the current budget lets them take.

        Args:
            method: ``"send_batch_msg"`` or ``"send_batch_attach_msg"``.
            recipients: How many recipients.
            return_msgid: Chunks of 100 (``send_batch_msg`` with msg ids).
            batch_size: The chunk size you will pass; None: the client's.

        Raises:
            ConfigurationError: An unknown method, or a count or size out of range.
        """
        endpoint = {
            "send_batch_msg": SEND_BATCH_MSG,
            "send_batch_attach_msg": SEND_BATCH_ATTACH_MSG,
        }
        if method not in endpoint:
            raise refuse("method", "send_batch_msg or send_batch_attach_msg", method)
        int_between("recipients", recipients, 0, 2**63 - 1)
        size = self.batch_size if batch_size is None else batch_size
        most = MAX_BATCH_ATTACH_RECIPIENTS if method == "send_batch_attach_msg" else MAX_BATCH_SIZE
        int_between("batch_size", size, 1, most)
        if return_msgid and method == "send_batch_msg":
            size = min(size, MSGID_BATCH_SIZE)
        return self._pipeline.estimate(endpoint[method], recipients, size)

    async def reconcile(
        self, job: BatchJob | BatchResult, *, grace: float = DEFAULT_RECONCILE_GRACE
    ) -> BatchResult:
        """Settle a bulk job's may-have-been-sent chunks by asking the service's history.

        A chunk whose answer was lost (a timeout, a crash, a job resumed from
        its journal) may or may not have been delivered. For a
        ``send_batch_msg`` job this asks history/querySessionMsg, for each
        recipient of each such chunk, whether the message is in the session of
        the sender and that recipient (one query per recipient, under the
        rate limits). A chunk whose message is found was delivered (its
        recipients without it are unregistered). A chunk found nowhere is
        looked for again once its request can no longer be on its way (its
        deadline, as the run that sent it set it) and ``grace`` more seconds
        have passed; found nowhere then, it was not delivered, and is failed as
        surely unsent (``resendable()``). A message of the same sender, type
        and body within a minute of the chunk's send is taken for it.
        With a journal, what was settled is recorded there, so a later
        resume sends the unsent chunks and never the delivered ones.

        System notifications (``send_batch_attach_msg``) and messages sent
        with ``MessageOption(history=False)`` are not kept in history: their
        chunks stay may-have-been-sent. So does a chunk whose queries fail.

        Args:
            job: The ``BatchJob`` of the send, or the ``BatchResult`` it returned.
            grace: Seconds after a chunk's deadline before its absence from
                the history counts as "not sent" (the service may still be
                writing a message it took late).

        Returns:
            The job's result with every chunk that could be settled settled.

        Raises:
            ConfigurationError: ``job`` is not a job that ran, nor its result,
                or ``grace`` is not a number of seconds.
            JournalUnavailable: The job's journal could not record what was settled.
        """
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace < 3600:
            raise refuse("grace", "a number of seconds from 0 to 3600", grace)
        return await reconcile(self.query_session_msg, job, grace=grace)
