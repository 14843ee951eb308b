"""SqliteJournal: a bulk job's journal in an SQLite file, held by one runner at a time."""

from __future__ import annotations

import os
import sqlite3
import sys

import anyio
import anyio.to_thread

from ._config import refuse
from ._errors import JournalLocked, JournalUnavailable
from ._journal import ChunkRecord, read_records, refuse_mismatch

__all__ = ["SqliteJournal", "durable_path"]


def durable_path(setting: str, path: object) -> str:
    """Return ``path`` as text if it names a file that outlives the process.

    SQLite takes ``""`` and ``":memory:"`` (and ``file:`` URIs with
    ``mode=memory``) as a database that vanishes with its connection: a job
    "resumed" from one would send everything again.

    Raises:
        ConfigurationError: Not a path, or not one of a durable file.
    """
    if not isinstance(path, str | os.PathLike):
        raise refuse(setting, "a path of a file", path)
    text = os.fspath(path)
    if not isinstance(text, str):
        raise refuse(setting, "a path of a file as text, not bytes", path)
    if not text.strip() or text == ":memory:" or text.lower().startswith("file:"):
        raise refuse(setting, "the path of a file that outlives the process", path)
    return text


def _lock_exclusively(fd: int) -> bool:
    """Lock ``fd``'s file for this process; False when another holds it.

    The OS lock ends with the process however it ends (SIGKILL included), so a
    killed runner never blocks the next one.
    """
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class SqliteJournal:
    """A journal in an SQLite file (the standard library; no server needed).

    Every write is committed with ``synchronous=FULL`` before the request it
    announces goes out, so a kill at any moment leaves the truth on disk.
    ``open`` takes an exclusive OS lock on ``<path>-lock`` for the runner, held
    until `aclose` or the end of its process: a second runner on the same file,
    in this process or another, gets ``JournalLocked`` before it sends anything.
    (OS locks on network file systems such as NFS are not reliable: keep the
    journal on a local disk.)

    Args:
        path: The file; created when missing. ``""``, ``":memory:"`` and
            ``file:`` URIs are refused: a journal must outlive its process.

    Raises:
        ConfigurationError: ``path`` is not the path of a durable file.
    """

    __slots__ = ("_connection", "_lock", "_lock_fd", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = durable_path("journal", path)
        self._connection: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"SqliteJournal({self.path!r})"

    def _hold(self) -> None:
        # A file of its own: closing a descriptor of the database file itself
        # would drop SQLite's POSIX locks on it (they belong to the process).
        # Named after the real path, so that a link to the journal shares its lock.
        lock = f"{os.path.realpath(self.path)}-lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock_exclusively(fd):
            os.close(fd)
            raise JournalLocked(
                f"the journal {self.path!r} is held by another runner (in this process or "
                "another); this one sent nothing. Wait for it to end, or stop it first."
            )
        self._lock_fd = fd

    def _release(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _open(self, fingerprint: str) -> dict[int, ChunkRecord]:
        self._hold()
        connection = self._connection = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS job (fingerprint TEXT NOT NULL, chunks INTEGER NOT NULL)"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS chunk (idx INTEGER PRIMARY KEY, record TEXT NOT NULL)"
        )
        jobs = connection.execute("SELECT * FROM job").fetchall()
        rows = connection.execute("SELECT idx, record FROM chunk").fetchall()
        where = repr(self.path)
        if len(jobs) > 1 or (not jobs and rows):
            raise JournalUnavailable(
                f"the journal {where} is damaged: its job record is "
                f"{'repeated' if jobs else 'missing'} beside {len(rows)} chunk records; "
                "nothing was sent"
            )
        if not jobs:
            connection.execute("INSERT INTO job VALUES (?, 0)", (fingerprint,))
            return {}
        job = jobs[0]
        refuse_mismatch(str(job[0]), fingerprint, where)
        written = job[1] if len(job) > 1 and isinstance(job[1], int) else None
        return read_records(rows, where, written)

    async def open(self, fingerprint: str) -> dict[int, ChunkRecord]:
        """See `Journal.open`."""
        if self._lock_fd is not None:
            raise JournalLocked(
                f"the journal {self.path!r} is already open for a job of this process; "
                "nothing was sent"
            )
        try:
            return await anyio.to_thread.run_sync(self._open, fingerprint)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._release)
            if isinstance(exc, sqlite3.Error | OSError):
                raise JournalUnavailable(
                    f"the journal {self.path!r} cannot be used: {exc}; nothing was sent"
                ) from exc
            raise

    def _write(self, index: int, record: ChunkRecord) -> None:
        if self._connection is None:
            raise JournalUnavailable(f"the journal {self.path!r} is not open")
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            text = record.to_json()
            added = connection.execute(
                "INSERT OR IGNORE INTO chunk VALUES (?, ?)", (index, text)
            ).rowcount
            if added:
                # The count of records written: a record lost later is noticed on resume.
                connection.execute("UPDATE job SET chunks = chunks + 1")
            else:
                connection.execute("UPDATE chunk SET record = ? WHERE idx = ?", (text, index))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    async def write(self, index: int, record: ChunkRecord) -> None:
        """See `Journal.write`."""
        async with self._lock:  # one connection, one writer at a time
            try:
                await anyio.to_thread.run_sync(self._write, index, record)
            except sqlite3.Error as exc:
                raise JournalUnavailable(f"the journal {self.path!r}: {exc}") from exc

    async def aclose(self) -> None:
        """See `Journal.aclose`: closes the file and lets the next runner take it."""
        # Closing the last connection checkpoints the WAL (an fsync): not on the loop.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._release)
