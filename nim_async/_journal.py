"""Journals: a bulk job's record on disk or in Redis, so that it outlives its process.

A journal holds one row per chunk, keyed by the chunk's index in the input:
a digest of its accids, its state and, once known, its outcome. A chunk is
written as ``sending`` before its request goes out and as ``sent`` or
``failed`` when its outcome is known, so after any crash the journal tells
which chunks were done, which surely were not, and which were in flight.
The journal grows with chunks, not with a copy of every accid (unless msg ids
were asked for: they are the outcome).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable
from typing import Any, Literal, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import attrs

from ._errors import ConfigurationError, JournalMismatch, JournalUnavailable

__all__ = [
    "ChunkRecord",
    "Journal",
    "RedisJournal",
    "SqliteJournal",
    "chunk_digest",
    "job_fingerprint",
]

State = Literal["sending", "sent", "failed"]


@attrs.frozen
class ChunkRecord:
    """What a journal knows of one chunk.

    Attributes:
        digest: A digest of the chunk's accids, in order (resuming must read the same).
        state: ``sending`` (its request may have gone out), ``sent`` or ``failed``.
        outcome: The answer read (``sent``) or the error (``failed``), as JSON-able data.
    """

    digest: str
    state: State
    outcome: dict[str, Any] | None = None

    def to_json(self) -> str:
        """The record as one JSON text."""
        return json.dumps({"d": self.digest, "s": self.state, "o": self.outcome})

    @classmethod
    def from_json(cls, text: str | bytes) -> ChunkRecord:
        """Read a record written by `to_json`."""
        data = json.loads(text)
        return cls(data["d"], data["s"], data["o"])


def chunk_digest(accids: Iterable[str]) -> str:
    """A digest of a chunk's accids in order (16 bytes of SHA-256, hex)."""
    digest = hashlib.sha256()
    for accid in accids:
        digest.update(accid.encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def job_fingerprint(action: str, form: dict[str, Any], chunk_size: int) -> str:
    """What makes two runs the same job: the action, every field but toAccids, the chunking."""
    text = json.dumps(
        [action, sorted((k, v) for k, v in form.items() if isinstance(v, str)), chunk_size]
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@runtime_checkable
class Journal(Protocol):
    """Where a ``BatchJob`` keeps its record: ``SqliteJournal`` or ``RedisJournal``."""

    async def open(self, fingerprint: str) -> dict[int, ChunkRecord]:
        """Start or resume the job ``fingerprint``; return what is recorded, by chunk index.

        Raises:
            JournalMismatch: The journal holds another job.
        """
        ...

    async def write(self, index: int, record: ChunkRecord) -> None:
        """Record chunk ``index`` durably before returning."""
        ...

    async def aclose(self) -> None:
        """Release the journal's connection."""
        ...


class SqliteJournal:
    """A journal in an SQLite file (the standard library; no server needed).

    Every write is committed with ``synchronous=FULL`` before the request it
    announces goes out, so a kill at any moment leaves the truth on disk.

    Args:
        path: The file; created when missing.
    """

    __slots__ = ("_connection", "_lock", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError(f"journal must be a path or a Journal, got {path!r}")
        self.path = os.fspath(path)
        self._connection: sqlite3.Connection | None = None
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"SqliteJournal({self.path!r})"

    def _open(self, fingerprint: str) -> dict[int, ChunkRecord]:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE IF NOT EXISTS job (fingerprint TEXT NOT NULL)")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS chunk (idx INTEGER PRIMARY KEY, record TEXT NOT NULL)"
        )
        row = connection.execute("SELECT fingerprint FROM job").fetchone()
        if row is None:
            connection.execute("INSERT INTO job VALUES (?)", (fingerprint,))
        elif row[0] != fingerprint:
            connection.close()
            raise JournalMismatch(
                f"the journal {self.path!r} records another job (another message, action "
                "or batch size); nothing was sent. Use a new journal for a new job."
            )
        self._connection = connection
        rows = connection.execute("SELECT idx, record FROM chunk").fetchall()
        return {index: ChunkRecord.from_json(text) for index, text in rows}

    async def open(self, fingerprint: str) -> dict[int, ChunkRecord]:
        """See `Journal.open`."""
        try:
            return await anyio.to_thread.run_sync(self._open, fingerprint)
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"the journal {self.path!r} cannot be used: {exc}") from exc

    def _write(self, index: int, record: ChunkRecord) -> None:
        assert self._connection is not None, "open() first"
        self._connection.execute(
            "INSERT OR REPLACE INTO chunk VALUES (?, ?)", (index, record.to_json())
        )

    async def write(self, index: int, record: ChunkRecord) -> None:
        """See `Journal.write`."""
        async with self._lock:  # one connection, one writer at a time
            try:
                await anyio.to_thread.run_sync(self._write, index, record)
            except sqlite3.Error as exc:
                raise JournalUnavailable(f"the journal {self.path!r}: {exc}") from exc

    async def aclose(self) -> None:
        """See `Journal.aclose`."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class RedisJournal:
    """A journal in Redis, for workers without a durable disk (extra ``redis``).

    One hash per job under ``key``; each write is one ``HSET``. Use the Redis
    the shared limiter uses, with persistence (AOF) if the record must survive
    Redis itself restarting.

    Args:
        redis: A ``redis://`` URL, or a ``redis.asyncio.Redis``.
        key: The job's name: the same key resumes the same job.
        timeout: The longest one Redis round trip may take.
    """

    __slots__ = ("_key", "_owns", "_redis", "_timeout")

    def __init__(self, redis: Any, key: str, *, timeout: float = 5.0) -> None:
        import redis.asyncio as aioredis

        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"key must be a non-empty str, got {key!r}")
        self._owns = isinstance(redis, str)
        if isinstance(redis, str):
            redis = aioredis.Redis.from_url(
                redis, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        self._redis = redis
        self._key = key
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"RedisJournal(key={self._key!r})"

    async def _run(self, command: str, *args: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            with anyio.fail_after(self._timeout):
                return await self._redis.execute_command(command, *args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise JournalUnavailable(f"the Redis journal is unreachable: {exc!r}") from exc

    async def open(self, fingerprint: str) -> dict[int, ChunkRecord]:
        """See `Journal.open`."""
        meta = f"{self._key}:job"
        created = await self._run("SET", meta, fingerprint, "NX")
        if not created:
            stored = await self._run("GET", meta)
            if stored is not None and stored.decode() != fingerprint:
                raise JournalMismatch(
                    f"the Redis journal {self._key!r} records another job; nothing was sent"
                )
        flat = await self._run("HGETALL", f"{self._key}:chunks")
        if isinstance(flat, dict):
            items = list(flat.items())
        else:
            items = list(zip(flat[::2], flat[1::2], strict=True))
        return {int(index): ChunkRecord.from_json(text) for index, text in items}

    async def write(self, index: int, record: ChunkRecord) -> None:
        """See `Journal.write`."""
        await self._run("HSET", f"{self._key}:chunks", index, record.to_json())

    async def aclose(self) -> None:
        """Close the connection made from a URL; a Redis client you passed stays yours."""
        if self._owns:
            await self._redis.aclose()
