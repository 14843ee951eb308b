"""NimClient's endpoints that act on sent messages: msg/recall, msg/delMsgOneWay,
msg/delRoamSession."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _actions as act
from ._forms import Form, push_fields, wire
from ._models import Push
from ._pipeline import Endpoint, EndpointGroup, no_result

__all__ = ["HistoryEndpoints"]

# Recalling or deleting twice leaves the same state (facts: recalling a message
# that does not exist answers 200), so an ambiguous failure may be retried.
_RECALL = Endpoint(act.RECALL, no_result, idempotent=True)
_DEL_MSG_ONE_WAY = Endpoint(act.DEL_MSG_ONE_WAY, no_result, idempotent=True)
_DEL_ROAM_SESSION = Endpoint(act.DEL_ROAM_SESSION, no_result, idempotent=True)


def _message_at(
    msgid: int | str, timetag: int, kind: str, from_: str, to: str, msg: str | None
) -> Form:
    """The fields that point recall and delMsgOneWay at one message (seed: same rows)."""
    return {
        "deleteMsgid": str(msgid),
        "timetag": wire(timetag),
        "type": kind,
        "from": from_,
        "to": to,
        "msg": msg,
    }


class HistoryEndpoints(EndpointGroup):
    """Acting on messages already sent: recall, one-way delete, roaming clean-up."""

    __slots__ = ()

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
            msg: A description of the recall, at most 5000 characters (``msg``).
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
        form = {
            **_message_at(msgid, timetag, "8" if team else "7", from_, to, msg),
            "ignoreTime": "1" if ignore_time else None,
            **push_fields(push),
            "env": env,
            "attach": wire(attach),
        }
        await self._pipe().call(_RECALL, form)

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
            msg: A description (``msg``).

        Raises:
            InvalidRequest: A parameter breaks a documented limit; nothing was sent.
            NimAPIError: An error answer.
        """
        form = _message_at(msgid, timetag, "14" if team else "13", from_, to, msg)
        await self._pipe().call(_DEL_MSG_ONE_WAY, form)

    async def delete_roam_session(self, from_: str, to: str, *, team: bool = False) -> None:
        """Delete the roaming messages of one session (msg/delRoamSession).

        Args:
            from_: The account whose roaming copy goes (``from``).
            to: The other side's accid, or the team id with ``team=True`` (``to``).
            team: A team session (``type=2``) instead of one-to-one (``type=1``).

        Raises:
            InvalidRequest: A parameter breaks a documented limit; nothing was sent.
            NimAPIError: An error answer.
        """
        form = {"type": "2" if team else "1", "from": from_, "to": to}
        await self._pipe().call(_DEL_ROAM_SESSION, form)
