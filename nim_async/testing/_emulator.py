"""`NimEmulator`: a stateful stand-in for the NIM server's message API.

Written from NetEase's server API documentation and official server SDKs,
independent of the client.
Each request goes through one pipeline (`NimEmulator._answer`):

    known action and POST → signing headers (414) → injected fault, unless after=True
    → frequency control (416) → Content-Type and parameter rules (414)
    → the action → injected fault with after=True → latency → answer

and is recorded in `NimEmulator.calls`, whatever its outcome. Every HTTP answer
carries a ``Date`` header from the emulator's own clock (``clock_skew`` included).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import httpx

from ._actions import ACTIONS
from ._checksum import auth_problem
from ._extra import needs_extra
from ._limiter import FrequencyControl
from ._records import (
    Call,
    NosTask,
    ReadReceipt,
    RoamDeletion,
    StoredBroadcast,
    StoredMessage,
    Upload,
)
from ._rules import check
from ._wire import Answer, Request, html_error, nim_error
from ._world import World

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["NimEmulator"]

logger = logging.getLogger("nim_async.testing")

_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"  # facts: only msg/fileUpload is multipart


@attrs.frozen
class _Fault:
    answer: Answer
    after: bool


class NimEmulator:
    """A stateful NIM server for one app: checks, stores, limits, and fails on demand.

    Use it in-process through `transport` or on a real port through `serve`.
    It checks the signing headers, Content-Type and every parameter rule of
    NetEase's API pages and official server SDKs (414 naming the parameter), knows
    registered accounts and teams, stores messages (recall, deletion and read
    receipts find them), enforces frequency control (416) and answers injected
    faults. Besides the eleven actions of NetEase's 消息功能 (message functions)
    page it knows ``msg/markReadMsg``, ``msg/markReadTeamMsg``, ``msg/delMsg``,
    ``history/delBroadcastMsgById`` and ``history/querySessionMsg``, which
    answers from the messages it stored.
    `state` gives what it knows and stored as JSON-ready data, also served at
    ``GET /emulator/state``.

    Attributes:
        calls: Every request under ``/nimserver/``, in arrival order, rejected ones included.
        rate_limited: How many calls frequency control answered with 416.
    """

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        accounts: Iterable[str] | None = None,
        unregistered: Iterable[str] | None = None,
        teams: Mapping[str, Iterable[str]] | None = None,
        rate_limits: object | None = None,
        unregister_as_string: bool = False,
        recall_window: float = 120.0,
        clock_skew: float = 0.0,
        msgs_as_string: bool = False,
        callback_numbers: bool = False,
    ) -> None:
        """Create an emulated app.

        Args:
            app_key: The app key requests must carry in ``AppKey``.
            app_secret: The secret their ``CheckSum`` is made with.
            accounts: The registered accids; every other accid is unregistered.
                ``None``: every accid exists (except any in ``unregistered``).
            unregistered: The accids that do not exist, when every other accid
                does; the opposite of ``accounts``, for testing a few unregistered
                recipients among many. ``None``: none.
            teams: Team id → member accids. A listed team checks that the sender is a
                member (804 if not); ``None``: every other tid exists too.
            rate_limits: An object whose ``for_action(action)`` gives the ``rates``
                (``calls`` per ``per`` seconds) and ``block`` seconds of an action,
                or ``None``; the client's ``RateLimits`` fits. ``None``: no limits.
            unregister_as_string: Batch answers give ``unregister`` as a JSON-encoded
                string of the array (the other documented shape) instead of an array.
            recall_window: How old (seconds) a message may be for ``msg/recall``
                without ``ignoreTime`` (NIM's default: two minutes).
            clock_skew: Seconds added to the real clock to make the service's clock:
                it checks ``CurTime`` (±300 s), stamps the ``Date`` header of every
                answer and, with `advance`, timetags and ages. For testing clients
                whose clock is off.
            msgs_as_string: ``history/querySessionMsg`` answers give ``msgs`` as a
                string holding the JSON array instead of the array (both official
                SDKs read either shape).
            callback_numbers: `deliver_callbacks` sends the numeric fields of its
                events (``eventType``, ``msgidServer``, ``msgTimestamp``, ``resendFlag``,
                ``customSafeFlag``) as JSON numbers instead of the strings NetEase
                documents, to test that a receiver accepts both.

        Raises:
            TypeError: ``rate_limits`` has no ``for_action`` method.
            ValueError: Both ``accounts`` and ``unregistered`` are given.
        """
        if accounts is not None and unregistered is not None:
            raise ValueError("give accounts (who exists) or unregistered (who does not), not both")
        self._app_key = app_key
        self._app_secret = app_secret
        self._lock = threading.Lock()
        self._world = World(
            accounts=accounts,
            unregistered=unregistered or (),
            teams=teams,
            recall_window=recall_window,
            unregister_as_string=unregister_as_string,
            clock_skew=clock_skew,
            msgs_as_string=msgs_as_string,
        )
        self._callback_numbers = callback_numbers
        self._control = FrequencyControl(rate_limits)
        self._faults: dict[str, deque[_Fault]] = {}
        self._periodic: dict[str, tuple[int, int, _Fault]] = {}
        self._latency: dict[str | None, float] = {}
        self._app: ASGIApp | None = None
        self.calls: list[Call] = []
        self.rate_limited = 0

    def __repr__(self) -> str:
        return f"NimEmulator(app_key={self._app_key!r}, calls={len(self.calls)})"

    @property
    def app_key(self) -> str:
        """The emulated app's key."""
        return self._app_key

    @property
    def app_secret(self) -> str:
        """The emulated app's secret (for building a client in tests)."""
        return self._app_secret

    @property
    def messages(self) -> list[StoredMessage]:
        """Every message and custom notification accepted (batch: one per delivery)."""
        return self._world.messages

    @property
    def uploads(self) -> dict[str, Upload]:
        """Stored uploads by id (``job/nos/del`` removes the ones it matches)."""
        return self._world.uploads

    @property
    def nos_tasks(self) -> list[NosTask]:
        """The clean-up tasks ``job/nos/del`` accepted."""
        return self._world.nos_tasks

    @property
    def roam_deletions(self) -> list[RoamDeletion]:
        """The sessions ``msg/delRoamSession`` deleted."""
        return self._world.roam_deletions

    @property
    def broadcasts(self) -> list[StoredBroadcast]:
        """The broadcasts ``msg/broadcastMsg`` accepted (deleted ones marked ``deleted``)."""
        return self._world.broadcasts

    @property
    def read_receipts(self) -> list[ReadReceipt]:
        """The read receipts ``msg/markReadMsg`` and ``msg/markReadTeamMsg`` accepted."""
        return self._world.read_receipts

    @property
    def app(self) -> ASGIApp:
        """The ASGI app: ``POST /nimserver/<action>.action``, ``GET /nos/<id>`` and
        ``GET /emulator/state`` (`state` as JSON, unsigned: it is not part of NIM).

        Raises:
            ModuleNotFoundError: Starlette or python-multipart is not installed; the
                message names the ``emulator`` extra that provides them.
        """
        if self._app is None:
            with needs_extra():  # Starlette is an extra: imported only when needed
                from ._app import build_app

            self._app = build_app(self._handle, self._download, self._world.clock, self._state_json)
        return self._app

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that sends requests to the app in-process.

        It honours the client's read timeout, as a socket would: an answer delayed
        by `set_latency` past it raises ``httpx.ReadTimeout``, and the call has
        been received and carried out.

        Raises:
            ModuleNotFoundError: The ``emulator`` extra is not installed (see `app`).
        """
        from ._server import InProcessTransport

        return InProcessTransport(self.app)

    def register(self, *accids: str) -> None:
        """Register accounts: add them to ``accounts``, or take them out of ``unregistered``.

        No effect when every accid exists (neither was given).
        """
        with self._lock:
            if self._world.accounts is not None:
                self._world.accounts.update(accids)
            else:
                self._world.unregistered.difference_update(accids)

    def add_team(self, tid: str, members: Iterable[str]) -> None:
        """Create or replace team ``tid`` with its member accids."""
        with self._lock:
            self._world.teams[tid] = frozenset(members)

    def fail_next(
        self,
        action: str,
        code: int,
        *,
        count: int = 1,
        after: bool = False,
        desc: str | None = None,
    ) -> None:
        """Make the next ``count`` signed calls of ``action`` answer ``{"code": code, "desc"}``.

        Faults queue up in order. A call spends a fault once its signature is
        checked, whatever happens next.

        Args:
            action: The action name, e.g. ``"msg/sendMsg"``.
            code: The NIM code to answer, e.g. 500, 503, 431.
            count: How many calls fail.
            after: Carry the call out first (messages stored) and then answer the
                error: an ambiguous failure. A call that fails on its own keeps its answer.
            desc: The ``desc``; by default NetEase's description of the code.

        Raises:
            ValueError: Unknown action, or ``count`` below 1.
        """
        self._queue(action, nim_error(code, desc), count, after)

    def fail_next_http(
        self, action: str, status: int = 502, *, count: int = 1, after: bool = False
    ) -> None:
        """Make the next ``count`` signed calls of ``action`` answer an HTML page with ``status``.

        That is what a gateway in front of NIM does (HTTP 502/503/504 with an HTML body).

        Args:
            action: The action name.
            status: The HTTP status.
            count: How many calls fail.
            after: Carry the call out first, as in `fail_next`.

        Raises:
            ValueError: Unknown action, or ``count`` below 1.
        """
        self._queue(action, html_error(status), count, after)

    def fail_every(
        self, action: str, nth: int, code: int, *, after: bool = False, desc: str | None = None
    ) -> None:
        """Make every ``nth`` signed call of ``action`` answer ``code``, until ``nth=0``.

        For failures spread through a long job (``nth=4``: a quarter of the
        calls fail). Faults queued by `fail_next` come first.

        Args:
            action: The action name.
            nth: Fail the nth, 2×nth, ... call from now on; 0 stops.
            code: The NIM code to answer.
            after: Carry the call out first, as in `fail_next`.
            desc: The ``desc``; by default NetEase's description of the code.

        Raises:
            ValueError: Unknown action, or ``nth`` negative.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; known: {sorted(ACTIONS)}")
        if nth < 0:
            raise ValueError("nth must be 0 or more")
        with self._lock:
            if nth == 0:
                self._periodic.pop(action, None)
            else:
                self._periodic[action] = (nth, 0, _Fault(nim_error(code, desc), after))

    def _queue(self, action: str, answer: Answer, count: int, after: bool) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; known: {sorted(ACTIONS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.setdefault(action, deque()).extend([_Fault(answer, after)] * count)

    def set_latency(self, seconds: float, action: str | None = None) -> None:
        """Wait ``seconds`` before answering (after the call is carried out).

        A client that disconnects or times out during the wait ends it quietly;
        its call stays recorded and carried out.

        Args:
            seconds: The delay; 0 removes it.
            action: One action, or ``None`` for every action without its own latency.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._lock:
            self._latency[action] = seconds

    def advance(self, seconds: float) -> None:
        """Move the emulator's wall clock forward by ``seconds``.

        It moves timetags, the recall window, upload expiry and "today", so stored
        messages age without waiting. It does not move the ``CurTime`` check or
        the ``Date`` header, which follow the real clock plus ``clock_skew``, so
        signatures made with the real clock stay valid; frequency control keeps
        real monotonic time.
        """
        with self._lock:
            self._world.offset += seconds

    def now(self) -> float:
        """The emulator's wall clock, Unix seconds (``clock_skew`` and `advance` included)."""
        return self._world.now()

    def summary(self) -> str:
        """One line on what the emulator answered: the total, each code, and the 416s.

        For example ``"NIM emulator answered 6 calls: code 200 ×3, code 414 ×1,
        code 416 ×1, HTTP 502 ×1; 1 blocked (416)"``. Answers without a JSON code
        (injected gateway pages) count by HTTP status; "blocked" counts every 416
        answer, injected ones included.
        """
        with self._lock:
            codes = Counter(call.code for call in self.calls if call.code is not None)
            pages = Counter(call.status for call in self.calls if call.code is None)
            total = len(self.calls)
        counts = [f"code {code} ×{n}" for code, n in sorted(codes.items())]
        counts += [f"HTTP {status} ×{n}" for status, n in sorted(pages.items())]
        answered = f"NIM emulator answered {total} call{'' if total == 1 else 's'}"
        if counts:
            answered += ": " + ", ".join(counts)
        return f"{answered}; {codes[416]} blocked (416)"

    def state(self) -> dict[str, Any]:
        """What the emulator knows and stored, as JSON-ready data.

        The same data ``GET /emulator/state`` answers and `write_state` writes.
        Request headers are left out: ``CheckSum``, ``CurTime`` and ``Nonce``
        sign a request, they are not part of it (and a form never holds the
        AppSecret). Upload bytes are left out too: a file part shows its size.

        The keys (new ones may be added; these keep their meaning): ``"app_key"``,
        the emulated app's key; ``"accounts"``, the registered accids, sorted, or
        ``null`` when every accid exists except those in ``"unregistered"``;
        ``"unregistered"``, the accids that do not exist, sorted (empty when
        ``"accounts"`` is a list); ``"calls"``, every request under
        ``/nimserver/`` in arrival order, rejected ones included, each
        ``{"action", "status", "code", "at", "form", "files"}`` (the action
        name, the HTTP status, the JSON ``code`` or ``null`` for an HTML page,
        the emulator's wall clock in Unix seconds, the form fields, and the size
        in bytes of each multipart file part); ``"messages"``, every message and
        custom notification accepted (a batch call: one per delivery), in order,
        each ``{"action", "msgid", "timetag", "from", "to", "team", "type",
        "body", "attach", "recalled", "deleted_one_way", "deleted", "read_by"}``,
        the fields of `StoredMessage` (``from`` for ``from_``; ``read_by`` sorted).

        Returns:
            The state as a dict of JSON-ready values.
        """
        with self._lock:
            accounts = self._world.accounts
            return {
                "app_key": self._app_key,
                "accounts": None if accounts is None else sorted(accounts),
                "unregistered": sorted(self._world.unregistered) if accounts is None else [],
                "calls": [_call_state(call) for call in self.calls],
                "messages": [_message_state(message) for message in self._world.messages],
            }

    def write_state(self, path: str | os.PathLike[str]) -> None:
        """Write `state` to ``path`` as JSON (UTF-8), whole or not at all.

        The JSON goes to a new file in the same directory, is flushed to disk and
        then renamed over ``path``: a reader never sees half of it, and a file
        already at ``path`` stays as it was if writing fails.

        Args:
            path: The file to write.

        Raises:
            OSError: The file cannot be written; the error's ``filename`` is ``path``
                (as a string).
        """
        target = os.fspath(path)
        data = self._state_json()
        try:
            fd, temp = tempfile.mkstemp(
                prefix=f".{os.path.basename(target)}.",
                suffix=".tmp",
                dir=os.path.dirname(os.path.abspath(target)),
            )
        except OSError as error:
            raise _naming(error, target) from error
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if isinstance(error, OSError):
                raise _naming(error, target) from error
            raise

    def _state_json(self) -> bytes:
        # One encoding for the route and the file, so the two cannot differ.
        return (json.dumps(self.state(), ensure_ascii=False, indent=2) + "\n").encode()

    def serve(
        self, host: str = "127.0.0.1", port: int = 0
    ) -> contextlib.AbstractContextManager[str]:
        """Serve the app on a real port in a daemon thread, for a ``with`` block.

        The socket is bound and the server accepting before the ``with`` body
        runs; the server shuts down when it ends, and logs `summary` at INFO on
        the ``"nim_async.testing"`` logger.

        Args:
            host: The address to bind.
            port: The port; 0 picks a free one.

        Returns:
            A context manager yielding the base URL, ``"http://127.0.0.1:<port>/nimserver/"``.

        Raises:
            ModuleNotFoundError: The ``emulator`` extra (Starlette, python-multipart,
                uvicorn) is not installed; uvicorn's absence shows when the ``with``
                block is entered.
        """
        from ._server import serve_in_thread

        return serve_in_thread(self.app, host, port, on_stop=self._log_summary)

    async def serve_forever(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        dump: str | os.PathLike[str] | None = None,
    ) -> None:
        """Serve the app with uvicorn in the running loop until cancelled or signalled.

        For ``nim-async emulator``: once the server has shut down (SIGINT, SIGTERM
        or cancellation), it prints `summary` to stdout and then writes `state`
        to ``dump``, if given, with `write_state`.

        Args:
            host: The address to bind.
            port: The port to bind.
            dump: A file for `state` at shutdown.

        Raises:
            OSError: The address cannot be bound, or ``dump`` cannot be written
                (the error's ``filename`` is ``dump``).
            ModuleNotFoundError: The ``emulator`` extra (Starlette, python-multipart,
                uvicorn) is not installed.
        """
        from ._server import serve_forever

        def stopped() -> None:
            self._print_summary()
            if dump is not None:
                self.write_state(dump)

        await serve_forever(self.app, host, port, on_stop=stopped)

    async def deliver_callbacks(
        self, url: str, *, since: int = 0, transport: httpx.AsyncBaseTransport | None = None
    ) -> list[int]:
        """POST the message copy (抄送) of the stored messages to ``url``, signed as NIM signs it.

        One JSON event (``eventType`` 1) per message and custom notification in
        `messages` from index ``since`` on, in order (a batch call: one per
        delivery). Message events carry ``convType`` ``PERSON`` or ``TEAM``, with
        ``msgidClient`` and ``resendFlag``; notification events ``CUSTOM_PERSON`` or
        ``CUSTOM_TEAM``, with ``msgType`` ``CUSTOM_P2P_MSG`` or ``CUSTOM_TEAM_MSG``,
        ``attach``, ``customSafeFlag`` (``0`` when sent with ``save=1``, online only,
        else ``1``) and, when sent with ``pushcontent``, ``customApnsText``. Values are
        strings, as NetEase documents them, unless the emulator was made with
        ``callback_numbers=True``. Each request carries ``AppKey``, ``CurTime``
        (milliseconds, the service's clock), ``MD5`` and ``CheckSum``. Calling it
        again delivers the same events again, with the same ``msgidServer``, as
        NIM's repeated deliveries do.

        Args:
            url: The receiver's URL.
            since: The index in `messages` to start from (``len(messages)`` after
                an earlier delivery sends only the new ones).
            transport: An httpx transport, e.g. ``httpx.ASGITransport(app)`` for a
                receiver in-process; ``None`` sends over the network.

        Returns:
            The HTTP status of each answer, in order.

        Raises:
            httpx.HTTPError: A request failed, or got no answer within 5 s.
        """
        from ._callbacks import deliver, message_event

        numbers = self._callback_numbers
        with self._lock:
            events = [message_event(m, numbers=numbers) for m in self._world.messages[since:]]
        return await deliver(
            url, events, self._app_key, self._app_secret, self._world.clock, transport=transport
        )

    def _log_summary(self) -> None:
        logger.info("%s", self.summary())

    def _print_summary(self) -> None:
        # Flushed: after a signal, uvicorn re-raises it and the process may end at once.
        print(self.summary(), flush=True)

    def _download(self, upload_id: str) -> Upload | None:
        with self._lock:
            upload = self._world.uploads.get(upload_id)
            now = self._world.now()
        if upload is None or (
            upload.expire_sec is not None and now > upload.created_at + upload.expire_sec
        ):
            return None
        return upload

    def _handle(self, req: Request) -> tuple[Answer, float]:
        # The latency is the app's to wait: it ends the wait when the client leaves.
        with self._lock:
            at = self._world.now()
            answer = self._answer(req)
            self.calls.append(_record(req, answer, at))
            delay = self._latency.get(req.action, self._latency.get(None, 0.0))
        return answer, delay

    def _answer(self, req: Request) -> Answer:
        if req.action not in ACTIONS or req.path != req.action + ".action":
            return nim_error(404, f"unknown action {req.path!r}", status=404)
        if req.method != "POST":
            return nim_error(405, f"{req.method} is not allowed: NIM actions take POST", status=405)
        # CurTime is checked against the service's clock (real time plus
        # clock_skew), not advance()'s: that ages stored messages without making
        # every signature look stale.
        problem = auth_problem(req.headers, self._app_key, self._app_secret, self._world.clock())
        if problem is not None:
            return nim_error(414, problem)
        fault = self._take_fault(req.action)
        if fault is not None and not fault.after:
            return fault.answer
        if not self._control.admit(req.action):
            self.rate_limited += 1
            return nim_error(416, f"{req.action}: frequency control, the action is blocked")
        answer = self._carry_out(req)
        if fault is not None and answer.ok:
            return fault.answer
        return answer

    def _take_fault(self, action: str) -> _Fault | None:
        queue = self._faults.get(action)
        if queue:
            return queue.popleft()
        periodic = self._periodic.get(action)
        if periodic is None:
            return None
        nth, seen, fault = periodic
        self._periodic[action] = (nth, seen + 1, fault)
        return fault if (seen + 1) % nth == 0 else None

    def _carry_out(self, req: Request) -> Answer:
        expected = _MULTIPART if req.action == "msg/fileUpload" else _FORM
        if req.media_type != expected:
            return nim_error(414, f"Content-Type must be {expected}")
        if req.problem is not None:
            return nim_error(414, req.problem)
        problem = check(req.action, req.form, req.files, self._world.now())
        if problem is not None:
            return nim_error(414, problem)
        return ACTIONS[req.action](self._world, req)


def _naming(error: OSError, path: str) -> OSError:
    """``error`` as the same kind of OSError about ``path``, not about the temporary file."""
    if error.errno is None:
        return error
    return OSError(error.errno, error.strerror, path)  # e.g. EACCES: a PermissionError


def _call_state(call: Call) -> dict[str, Any]:
    return {
        "action": call.action,
        "status": call.status,
        "code": call.code,
        "at": call.at,
        "form": dict(call.form),
        "files": {name: len(content) for name, content in call.files.items()},
    }


def _message_state(message: StoredMessage) -> dict[str, Any]:
    return {
        "action": message.action,
        "msgid": message.msgid,
        "timetag": message.timetag,
        "from": message.from_,
        "to": message.to,
        "team": message.team,
        "type": message.type,
        "body": message.body,
        "attach": message.attach,
        "recalled": message.recalled,
        "deleted_one_way": message.deleted_one_way,
        "deleted": message.deleted,
        "read_by": sorted(message.read_by),
    }


def _record(req: Request, answer: Answer, at: float) -> Call:
    # A copy through JSON: the record shows what the client decoded, and later
    # changes to stored state cannot reach it.
    body = answer.body if isinstance(answer.body, str) else json.loads(json.dumps(answer.body))
    return Call(
        action=req.action,
        form=dict(req.form),
        files=dict(req.files),
        headers=dict(req.headers),
        status=answer.status,
        code=answer.code,
        answer=body,
        at=at,
    )
