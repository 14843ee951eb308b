"""NimClient: its lifecycle, and one thin method per NIM endpoint."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from . import _actions as act
from ._auth import CheckSumAuth
from ._forms import body_fields, flag, option_field, push_fields, wire
from ._limits import Limiter, LocalLimiter, RateLimits
from ._models import Body, MessageOption, Push, SendResult
from ._pipeline import Answer, Endpoint, Pipeline
from ._retry import RetryPolicy

__all__ = [
    "CHINA_URL",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "OVERSEAS_URL",
    "NimClient",
]

CHINA_URL = "https://api.netease.im/nimserver/"
OVERSEAS_URL = "https://api-sg.netease.im/nimserver/"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_BATCH_SIZE = 500


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


def _send_result(answer: Answer) -> SendResult:
    data = answer.get("data") or {}
    return SendResult(int(data["msgid"]), int(data["timetag"]), bool(data.get("antispam", False)))


def _nothing(answer: Answer) -> None:
    return None


_SEND_MSG = Endpoint(act.SEND_MSG, _send_result)
_SEND_ATTACH_MSG = Endpoint(act.SEND_ATTACH_MSG, _nothing)


def _hold_time(timeout: httpx.Timeout) -> float:
    # The longest one attempt can take: what a shared limiter may hold a slot for.
    parts = [timeout.connect, timeout.write, timeout.read, timeout.pool]
    return sum(part for part in parts if part is not None) or 60.0


def _save(offline: bool | None) -> str | None:
    # seed, sendAttachMsg save: "1表示只发在线,2表示会存离线".
    return None if offline is None else ("2" if offline else "1")


class NimClient:
    """An asyncio client for NIM's message API, with one pooled connection pool.

    Create it inside the running event loop (in a FastAPI lifespan, not at
    import time): its connections belong to the loop that first uses them.
    Use it as ``async with NimClient(...) as client:`` or call :meth:`aclose`.

    Args:
        app_key: The app's AppKey.
        app_secret: The app's AppSecret; it never appears in a repr, log or error.
        base_url: ``CHINA_URL`` (default) or ``OVERSEAS_URL``, or an emulator's URL.
        rate_limits: The client-side budget per action; None turns limiting off.
        limiter: Where the budget's state lives; None is an in-process ``LocalLimiter``.
        retry: What to retry and how long to wait.
        timeout: Seconds for each phase of a request, or an ``httpx.Timeout``.
        max_connections: The connection pool's size.
        batch_size: Recipients per batch call (at most 100 when msg ids are asked for).
        transport: Any ``httpx.AsyncBaseTransport``, e.g. ``NimEmulator.transport()``.
    """

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        base_url: str = CHINA_URL,
        rate_limits: RateLimits | None = RateLimits.default(),  # noqa: B008 - immutable
        limiter: Limiter | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - immutable
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 1 <= batch_size <= 500:
            raise ValueError(f"batch_size must be 1 to 500 (the seed's limit), got {batch_size}")
        self.app_key = app_key
        self.batch_size = batch_size
        self.rate_limits = rate_limits
        self.retry = retry
        http_timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            auth=CheckSumAuth(app_key, app_secret),
            timeout=http_timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )
        self._pipeline = Pipeline(
            self._http,
            app_key=app_key,
            rate_limits=rate_limits,
            limiter=limiter if limiter is not None else LocalLimiter(),
            retry=retry,
            hold=_hold_time(http_timeout),
        )
        self._state = _State.UNOPENED

    def __repr__(self) -> str:
        return f"NimClient(app_key={self.app_key!r}, base_url={str(self._http.base_url)!r})"

    async def __aenter__(self) -> NimClient:
        if self._state is _State.CLOSED:
            raise RuntimeError("this NimClient is closed; create a new one")
        self._state = _State.OPENED
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. The client cannot be used afterwards."""
        self._state = _State.CLOSED
        await self._http.aclose()

    def _pipe(self) -> Pipeline:
        if self._state is _State.CLOSED:
            raise RuntimeError("this NimClient is closed; create a new one")
        return self._pipeline

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
        use_yidun: bool | None = None,
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
            **body_fields(body),
            "msgDesc": msg_desc,
            "antispam": wire(antispam),
            "antispamCustom": wire(antispam_custom),
            "option": option_field(option),
            **push_fields(push),
            "ext": wire(ext),
            "forcepushlist": wire(force_push_list),
            "forcepushcontent": force_push_content,
            "forcepushall": wire(force_push_all),
            "bid": bid,
            "useYidun": flag(use_yidun),
            "yidunAntiCheating": wire(yidun_anti_cheating),
            "markRead": flag(mark_read),
            "checkFriend": wire(check_friend),
            "subType": wire(sub_type),
            "msgSenderNoSense": flag(sender_no_sense),
            "msgReceiverNoSense": flag(receiver_no_sense),
            "env": env,
        }
        return await self._pipe().call(_SEND_MSG, form)

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

        Raises:
            InvalidRequest: A parameter breaks a documented limit; nothing was sent.
            NotFound: The receiver or team does not exist.
            NimAPIError: Any other error answer.
            NimConnectionError: No answer came back.
        """
        form = {
            "from": from_,
            "msgtype": "1" if team else "0",
            "to": to,
            "attach": wire(attach),
            **push_fields(push),
            "sound": sound,
            "save": _save(offline),
            "option": option_field(option),
            "isForcePush": wire(force_push),
            "forcePushContent": force_push_content,
            "forcePushAll": wire(force_push_all),
            "forcePushList": wire(force_push_list),
            "env": env,
        }
        await self._pipe().call(_SEND_ATTACH_MSG, form)
