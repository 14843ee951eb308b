"""NimClient's system notification endpoints: msg/sendAttachMsg, msg/sendBatchAttachMsg."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import _actions as act
from ._bulk import BatchJob, BatchResult, Progress, Recipients, call_in_chunks
from ._forms import Form, option_field, push_fields, save_field, wire
from ._models import MessageOption, Push
from ._pipeline import Endpoint, EndpointGroup, no_result, raw_answer

__all__ = ["NotificationEndpoints"]


def _notification_fields(
    attach: str | Mapping[str, Any],
    offline: bool | None,
    push: Push | None,
    sound: str | None,
    option: MessageOption | None,
    force_push: bool | None,
    force_push_content: str | None,
    env: str | None,
) -> Form:
    """The fields sendAttachMsg and sendBatchAttachMsg share (seed: the same rows)."""
    return {
        "attach": wire(attach),
        **push_fields(push),
        "sound": sound,
        "save": save_field(offline),
        "option": option_field(option),
        "isForcePush": wire(force_push),
        "forcePushContent": force_push_content,
        "env": env,
    }


_SEND_ATTACH_MSG = Endpoint(act.SEND_ATTACH_MSG, no_result)
_SEND_BATCH_ATTACH_MSG = Endpoint(act.SEND_BATCH_ATTACH_MSG, raw_answer)


class NotificationEndpoints(EndpointGroup):
    """Custom system notifications: the app's own events, not shown as messages."""

    __slots__ = ()
    batch_size: int

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
            **_notification_fields(
                attach, offline, push, sound, option, force_push, force_push_content, env
            ),
            "forcePushAll": wire(force_push_all),
            "forcePushList": wire(force_push_list),
        }
        await self._pipe().call(_SEND_ATTACH_MSG, form)

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
        max_concurrency: int = 4,
        on_progress: Callable[[Progress], object] | None = None,
        job: BatchJob | None = None,
    ) -> BatchResult:
        """Send one notification to many users (msg/sendBatchAttachMsg), chunked for you.

        ``to`` may be any iterable or async iterable of accids, of any length;
        it is read lazily and sent in chunks of the client's ``batch_size``
        (500), ``max_concurrency`` at once.

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
            **_notification_fields(
                attach, offline, push, sound, option, force_push, force_push_content, env
            ),
        }
        return await call_in_chunks(
            self._pipe(),
            _SEND_BATCH_ATTACH_MSG,
            form,
            to,
            chunk_size=self.batch_size,
            max_concurrency=max_concurrency,
            on_progress=on_progress,
            job=job,
        )
