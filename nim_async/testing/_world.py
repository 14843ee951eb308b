"""The emulated service's state: its clocks, accounts, teams and everything stored.

Two clocks: `World.clock` is the service's own clock (real time plus the
emulator's ``clock_skew``), which checks ``CurTime`` and stamps the ``Date``
header; `World.now` is that clock moved on by `advance` (``offset``), which
stamps timetags and ages messages, uploads and "today".
Callers hold the emulator's lock while they use a `World`; it has none of its own.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping

from ._records import (
    NosTask,
    ReadReceipt,
    RoamDeletion,
    StoredBroadcast,
    StoredMessage,
    Upload,
)
from ._wire import Answer, nim_error

__all__ = ["World"]

# Ids shaped like the examples of NetEase's 消息功能 page: msgid 1200510468189,
# broadcastId 48174937359009.
_FIRST_MSGID = 1_200_510_468_189
_FIRST_BROADCAST_ID = 48_174_937_359_009
# Custom notifications' server ids, shaped like the msgidServer "373171" of a CUSTOM_TEAM
# copy in NetEase's message-copy page (会话类型消息抄送); far below every msgid, so a
# receiver that dedupes copies by msgidServer never confuses the two.
_FIRST_NOTIFICATION_ID = 373_171


class World:
    """Accounts, teams, stored records and the wall clock of one emulated app."""

    def __init__(
        self,
        *,
        accounts: Iterable[str] | None,
        unregistered: Iterable[str] = (),
        teams: Mapping[str, Iterable[str]] | None,
        recall_window: float,
        unregister_as_string: bool,
        clock_skew: float = 0.0,
        msgs_as_string: bool = False,
    ) -> None:
        self.accounts: set[str] | None = None if accounts is None else set(accounts)
        # Only while accounts is None: every accid exists except these.
        self.unregistered: set[str] = set(unregistered)
        # Teams with a member list; with teams=None any other tid exists too,
        # and its membership is not checked.
        self.teams: dict[str, frozenset[str]] = {
            tid: frozenset(members) for tid, members in (teams or {}).items()
        }
        self.open_teams = teams is None
        self.recall_window = recall_window
        self.unregister_as_string = unregister_as_string
        self.msgs_as_string = msgs_as_string
        self.messages: list[StoredMessage] = []
        self.by_msgid: dict[int, StoredMessage] = {}
        self.uploads: dict[str, Upload] = {}
        self.nos_tasks: list[NosTask] = []
        self.roam_deletions: list[RoamDeletion] = []
        self.broadcasts: list[StoredBroadcast] = []
        self.read_receipts: list[ReadReceipt] = []
        self.clock_skew = clock_skew
        self.offset = 0.0
        self._msgids = itertools.count(_FIRST_MSGID)
        self._broadcast_ids = itertools.count(_FIRST_BROADCAST_ID)
        self._notification_ids = itertools.count(_FIRST_NOTIFICATION_ID)

    def clock(self) -> float:
        """The service's own clock, Unix seconds: real time plus ``clock_skew``."""
        return time.time() + self.clock_skew

    def now(self) -> float:
        """The emulated wall clock, Unix seconds: `clock` moved on by `offset`."""
        return self.clock() + self.offset

    def now_ms(self) -> int:
        """The emulated wall clock, Unix milliseconds (the unit of timetags)."""
        return int(self.now() * 1000)

    def next_msgid(self) -> int:
        """A new message id, greater than every earlier one."""
        return next(self._msgids)

    def next_notification_id(self) -> int:
        """A new custom notification id, greater than every earlier one."""
        return next(self._notification_ids)

    def next_broadcast_id(self) -> int:
        """A new broadcast id, greater than every earlier one."""
        return next(self._broadcast_ids)

    def has_account(self, accid: str) -> bool:
        """Whether ``accid`` is registered: listed in ``accounts``, or, without a
        list, not in ``unregistered``."""
        if self.accounts is None:
            return accid not in self.unregistered
        return accid in self.accounts

    def account_problem(self, param: str, accid: str) -> Answer | None:
        """A 404 answer if the account in ``param`` is not registered, else ``None``."""
        if self.has_account(accid):
            return None
        return nim_error(404, f"{param}: account {accid!r} does not exist")

    def recipient_problem(
        self, team: bool, param: str, to: str, sender: str, sender_param: str = "from"
    ) -> Answer | None:
        """A 404 (or 804) answer if a message from ``sender`` cannot go to ``to``, else ``None``.

        Args:
            team: Whether ``to`` is a team id.
            param: The parameter ``to`` came in, for the ``desc``.
            to: The accid or tid.
            sender: The sender's accid; for a team with a member list it must be a member.
            sender_param: The parameter ``sender`` came in, for the ``desc``.
        """
        if not team:
            return self.account_problem(param, to)
        members = self.teams.get(to)
        if members is None:
            return None if self.open_teams else nim_error(404, f"{param}: team {to!r} not found")
        if sender not in members:
            # facts: 804 "user not in team"
            return nim_error(804, f"{sender_param}: {sender!r} is not a member of team {to!r}")
        return None

    def store(self, message: StoredMessage) -> None:
        """Keep an accepted message (recall and one-way deletion find it by msgid)."""
        self.messages.append(message)
        if message.msgid is not None:
            self.by_msgid[message.msgid] = message
