"""NimClient's message endpoints: msg/sendMsg, msg/sendBatchMsg, msg/broadcastMsg."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from . import _actions as act
from ._bulk import BatchJob, BatchResult, Progress, Recipients, call_in_chunks
from ._forms import Form, body_fields, flag, option_field, push_fields, wire
from ._models import Body, Broadcast, MessageOption, Push, SendResult
from ._pipeline import Answer, Endpoint, EndpointGroup, raw_answer

__all__ = ["MessageEndpoints"]

DEFAULT_MAX_CONCURRENCY = 4
# seed, sendBatchMsg returnMsgid: "toAccids包含的账号数量不可以超过100个".
MSGID_BATCH_SIZE = 100


def _send_result(answer: Answer) -> SendResult:
    data = answer.get("data") or {}
    return SendResult(int(data["msgid"]), int(data["timetag"]), bool(data.get("antispam", False)))


def _broadcast(answer: Answer) -> Broadcast:
    msg = answer.get("msg") or {}
    expire = msg.get("expireTime")
    return Broadcast(
        broadcast_id=int(msg["broadcastId"]),
        body=str(msg.get("body", "")),
        create_time=int(msg["createTime"]),
        expire_time=None if expire is None else int(expire),
        is_offline=bool(msg.get("isOffline", False)),
        target_os=tuple(msg.get("targetOs") or ()),
        from_=msg.get("fromAccid"),
    )


def _message_fields(
    body: Body,
    option: MessageOption | None,
    push: Push | None,
    msg_desc: str | None,
    ext: str | Mapping[str, Any] | None,
    bid: str | None,
    use_yidun: Literal[False] | None,
    yidun_anti_cheating: Mapping[str, Any] | None,
    env: str | None,
) -> Form:
    """The fields sendMsg and sendBatchMsg share (seed: the same rows in both tables)."""
    return {
        **body_fields(body),
        "msgDesc": msg_desc,
        "option": option_field(option),
        **push_fields(push),
        "ext": wire(ext),
        "bid": bid,
        "useYidun": flag(use_yidun),
        "yidunAntiCheating": wire(yidun_anti_cheating),
        "env": env,
    }


_SEND_MSG = Endpoint(act.SEND_MSG, _send_result)
_SEND_BATCH_MSG = Endpoint(act.SEND_BATCH_MSG, raw_answer)
_BROADCAST = Endpoint(act.BROADCAST, _broadcast)


class MessageEndpoints(EndpointGroup):
    """Messages: to one user or team, to many users, and to everybody."""

    __slots__ = ()
    batch_size: int

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
        form = {
            "from": from_,
            "ope": "1" if team else "0",
            "to": to,
            **_message_fields(
                body, option, push, msg_desc, ext, bid, use_yidun, yidun_anti_cheating, env
            ),
            "antispam": wire(antispam),
            "antispamCustom": wire(antispam_custom),
            "forcepushlist": wire(force_push_list),
            "forcepushcontent": force_push_content,
            "forcepushall": wire(force_push_all),
            "markRead": flag(mark_read),
            "checkFriend": wire(check_friend),
            "subType": wire(sub_type),
            "msgSenderNoSense": flag(sender_no_sense),
            "msgReceiverNoSense": flag(receiver_no_sense),
        }
        return await self._pipe().call(_SEND_MSG, form)

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
        form = {
            "fromAccid": from_,
            **_message_fields(
                body, option, push, msg_desc, ext, bid, use_yidun, yidun_anti_cheating, env
            ),
            "returnMsgid": "true" if return_msgid else None,
        }
        chunk_size = min(self.batch_size, MSGID_BATCH_SIZE) if return_msgid else self.batch_size
        return await call_in_chunks(
            self._pipe(),
            _SEND_BATCH_MSG,
            form,
            to,
            chunk_size=chunk_size,
            max_concurrency=max_concurrency,
            on_progress=on_progress,
            job=job,
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
        form = {
            "body": body,
            "from": from_,
            "isOffline": wire(offline),
            "ttl": wire(ttl_hours),
            "targetOs": wire(target_os),
        }
        return await self._pipe().call(_BROADCAST, form)
