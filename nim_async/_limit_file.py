"""The SQLite file behind ``LocalLimiter(path=...)``: one rate budget for every process on a host.

Worker processes of one service (uvicorn or gunicorn workers, a cron job, a
restarted process) that open the same file draw from one budget per app key
and action, and a process started again inside a window still sees the calls
of the last minute and the last day: the budget outlives the process.

A slot is a row: its key (app key and action), when it was started, the
longest it may be held (the request's timeout) and when it was answered
(``released``, NULL while in flight). For a rate of ``per`` seconds, a slot in
flight counts until ``started + hold + per``, so a process killed mid-call
cannot hold its slot for ever; an answered one counts until ``released + per``.
A block (after a 416) is a row per key with its end. Every slot is taken in
one ``BEGIN IMMEDIATE`` transaction, so two processes never both take the last
slot of a window.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from ._config import refuse
from ._errors import LimiterUnavailable

__all__ = ["LimitFile"]

logger = logging.getLogger("nim_async")

T = TypeVar("T")
Rates = tuple[tuple[int, float], ...]

# Bumped when the tables change: a file of another layout is refused, not misread.
_LAYOUT = 1
_TABLES = """
CREATE TABLE IF NOT EXISTS slots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a late release finds no stranger
    key TEXT NOT NULL,
    started REAL NOT NULL,
    hold REAL NOT NULL,
    released REAL,
    horizon REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS slots_of_key ON slots (key, horizon);
CREATE INDEX IF NOT EXISTS slots_by_horizon ON slots (horizon);
CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, until REAL NOT NULL);
PRAGMA user_version = 1;
"""
# When a slot stops counting for a rate of ?3 seconds, at the earliest, read at ?2:
# an answered slot at released + per; one in flight not before started + hold + per,
# and not before now + per either (it has not been answered yet). The earliest
# end is what a waiter can be told; it never tells a slot free too soon.
_ENDING = "(CASE WHEN released IS NULL THEN min(started + hold, ?2) ELSE released END + ?3)"
_COUNT = f"SELECT count(*) FROM slots WHERE key = ?1 AND horizon > ?2 AND {_ENDING} > ?2"
_NTH_ENDING = (
    f"SELECT {_ENDING} AS ending FROM slots WHERE key = ?1 AND horizon > ?2 AND {_ENDING} > ?2 "
    "ORDER BY ending LIMIT 1 OFFSET ?4"
)
# A process blocked by another's write lock waits this long before the call
# fails with LimiterUnavailable (a write lasts well under a millisecond).
_BUSY_SECONDS = 5.0


def _checked_path(path: object) -> str:
    accepts = "a file path (str or os.PathLike), not '' or ':memory:'"
    if not isinstance(path, str | os.PathLike):
        raise refuse("path", accepts, path)
    text = os.fspath(path)
    # ":memory:" would give each process (and connection) a budget of its own.
    if not isinstance(text, str) or text in ("", ":memory:"):
        raise refuse("path", accepts, path)
    return os.path.abspath(text)


def _into_wal(connection: sqlite3.Connection) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite answers "database
    # is locked" at once, without its busy handler, while another process opens
    # it too (measured: six workers opening one new file). The mode is kept in
    # the file, so only its first users ever wait here.
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _close_in(pid: int, connection: sqlite3.Connection) -> None:
    # A connection inherited through fork() belongs to the parent's process: a
    # child closing it could disturb the parent's locks, so only its own process closes it.
    if os.getpid() == pid:
        connection.close()


class LimitFile:
    """Slots and blocks of rate budgets in an SQLite file that processes on one host share.

    Every method does blocking file I/O: call it from a worker thread. One
    connection per process, opened at the first use (so a process forked after
    the limiter was made, as gunicorn's ``--preload`` does, opens its own) and
    used by one thread at a time.

    Durability: the file is in WAL mode with ``synchronous=NORMAL``, so a
    process that crashes or is killed loses nothing it committed; a power cut
    may lose the last moments of slots, which a rate limiter can afford (the
    server's own block is the backstop).

    Args:
        path: The file; created with its tables if it does not exist.
        clock: Wall-clock seconds (``time.time``) shared by every process on the
            host; replaceable in tests. A clock stepped back makes slots count
            longer; one stepped forward frees them early.

    Raises:
        ConfigurationError: ``path`` is not a str or path, or is ``""`` or ``":memory:"``.
    """

    __slots__ = ("__weakref__", "_clock", "_connection", "_inherited", "_lock", "_path", "_pid")

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time):
        self._path = _checked_path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        # Connections of a parent process, kept unclosed (see _close_in).
        self._inherited: list[sqlite3.Connection] = []

    @property
    def path(self) -> str:
        """The file's absolute path."""
        return self._path

    def _open(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        if self._connection is not None:
            self._inherited.append(self._connection)
        connection = sqlite3.connect(
            self._path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(_BUSY_SECONDS * 1000)}")
            _into_wal(connection)
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("BEGIN IMMEDIATE")
            try:
                (layout,) = connection.execute("PRAGMA user_version").fetchone()
                if layout == 0:
                    for statement in _TABLES.split(";"):
                        if statement.strip():
                            connection.execute(statement)
                elif layout != _LAYOUT:
                    raise LimiterUnavailable(
                        f"the rate-limit file {self._path!r} has layout {layout}, this "
                        f"version of nim_async reads layout {_LAYOUT}; nothing was sent"
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        except BaseException:
            connection.close()
            raise
        self._connection, self._pid = connection, os.getpid()
        weakref.finalize(self, _close_in, self._pid, connection)
        return connection

    def _transaction(self, work: Callable[[sqlite3.Connection, float], T], *, write: bool) -> T:
        """Run ``work(connection, now)`` in one transaction; ``now`` is read inside it.

        A write transaction (``BEGIN IMMEDIATE``) holds the file's write lock
        from its start, so what it reads is still true when it writes.
        """
        with self._lock:
            try:
                connection = self._open()
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = work(connection, self._clock())
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise LimiterUnavailable(
                    f"the rate-limit file {self._path!r} cannot be used ({exc}); nothing was sent"
                ) from exc
            return result

    @staticmethod
    def _wait(connection: sqlite3.Connection, key: str, rates: Rates, now: float) -> float:
        """Seconds until a slot of every rate may be free: 0 (now), exact, or a lower bound."""
        row = connection.execute(
            "SELECT until FROM blocks WHERE key = ? AND until > ?", (key, now)
        ).fetchone()
        if row is not None:
            return float(row[0]) - now
        wait = 0.0
        for calls, per in rates:
            (count,) = connection.execute(_COUNT, (key, now, per)).fetchone()
            if count >= calls:
                (ending,) = connection.execute(
                    _NTH_ENDING, (key, now, per, count - calls)
                ).fetchone()
                wait = max(wait, float(ending) - now)
        return wait

    def take(self, key: str, rates: Rates, hold: float) -> tuple[int | None, float]:
        """Take a slot of every rate of ``key`` if each has one and no block holds ``key``.

        Args:
            key: The budget: the app key and the action.
            rates: ``(calls, per)`` of each rate.
            hold: The longest the slot can be held (the request's timeout).

        Returns:
            ``(slot id, 0.0)``; or ``(None, seconds)`` when no slot is free, where
            ``seconds`` is the earliest a slot may free: exact for a block or an
            answered slot, a lower bound (``per``) for one still in flight.

        Raises:
            LimiterUnavailable: The file cannot be opened, read or written.
        """

        def take(connection: sqlite3.Connection, now: float) -> tuple[int | None, float]:
            # What counts for nobody any more goes first: the file stays small.
            connection.execute("DELETE FROM slots WHERE horizon <= ?", (now,))
            connection.execute("DELETE FROM blocks WHERE until <= ?", (now,))
            wait = self._wait(connection, key, rates, now)
            if wait > 0:
                return None, wait
            span = max(per for _, per in rates)
            cursor = connection.execute(
                "INSERT INTO slots (key, started, hold, released, horizon) "
                "VALUES (?, ?, ?, NULL, ?)",
                (key, now, hold, now + hold + span),
            )
            return cursor.lastrowid, 0.0

        return self._transaction(take, write=True)

    def release(self, slot: int, span: float) -> None:
        """Write that ``slot`` was answered now: it counts ``per`` more seconds for each rate.

        Args:
            slot: The id `take` returned.
            span: The longest ``per`` of the slot's rates: after it, the row is deleted.

        Raises:
            LimiterUnavailable: The file cannot be written; the slot then keeps
                counting until ``started + hold + per``.
        """

        def release(connection: sqlite3.Connection, now: float) -> None:
            connection.execute(
                "UPDATE slots SET released = ?, horizon = ? WHERE id = ?",
                (now, now + span, slot),
            )

        self._transaction(release, write=True)

    def block(self, key: str, seconds: float) -> None:
        """Admit no call for ``key``, in any process, for ``seconds`` from now.

        A later block never shortens a longer one.

        Raises:
            LimiterUnavailable: The file cannot be written.
        """

        def block(connection: sqlite3.Connection, now: float) -> None:
            connection.execute(
                "INSERT INTO blocks (key, until) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET until = max(until, excluded.until)",
                (key, now + seconds),
            )

        self._transaction(block, write=True)
