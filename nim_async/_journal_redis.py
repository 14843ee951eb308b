"""RedisJournal: a bulk job's journal in Redis, held by one runner at a time through a lease."""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from typing import Any

import anyio

from ._config import refuse
from ._errors import ConfigurationError, JournalLocked, JournalUnavailable
from ._extras import needs_extra
from ._journal import ChunkRecord, read_records, refuse_mismatch

__all__ = ["RedisJournal"]

logger = logging.getLogger("nim_async")

# KEYS[1]: the journal hash; KEYS[2]: the lease. ARGV[1]: this runner's token.
# Every write checks the token, so a runner that lost its lease writes nothing
# (and, since a chunk goes out only after its record, sends nothing more).
# A journal hash without its job field was flushed or evicted under the job.
_WRITE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'job') == 0 then return -1 end
if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'chunks', 1)
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""
# Start the job: only while the hash is empty (a new job), and only by the lease holder.
_START = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'job', ARGV[2], 'chunks', 0)
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_META = (b"job", b"chunks")


class RedisJournal:
    """A journal in Redis, for workers without a durable disk (extra ``redis``).

    One hash per job, ``<key>:journal``, holds the job's identity, the count of
    records written and one field per chunk. ``open`` takes a lease,
    ``<key>:lease``, with a time-to-live of ``lease`` seconds and a token of
    its own; the runner renews it while the job runs, and every write checks
    the token in the same atomic script: a second runner gets ``JournalLocked``
    before it sends anything, and a runner whose lease lapsed (paused longer
    than ``lease``) writes, and so sends, nothing more. After a runner is
    killed, the next one can take the journal once the lease has lapsed.

    Use the Redis the shared limiter uses, with persistence (AOF) if the record
    must survive Redis restarting, and a ``maxmemory-policy`` that never evicts
    it (``noeviction`` or a ``volatile-*`` policy; the hash has no expiry): a
    journal evicted whole looks like a new job.

    Args:
        redis: A ``redis://`` URL, or a ``redis.asyncio.Redis``.
        key: The job's name: the same key resumes the same job.
        timeout: The longest one Redis round trip may take.
        lease: Seconds a runner's hold lasts without renewal (renewed every
            third of it while the job runs).

    Raises:
        ConfigurationError: ``key``, ``timeout`` or ``lease`` is out of range.
    """

    __slots__ = ("_key", "_lease", "_owns", "_redis", "_scripts", "_timeout", "_token")

    def __init__(self, redis: Any, key: str, *, timeout: float = 5.0, lease: float = 30.0) -> None:
        with needs_extra("RedisJournal", "redis", frozenset({"redis"})):
            import redis.asyncio as aioredis

        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"key must be a non-empty str, got {key!r}")
        for name, value in (("timeout", timeout), ("lease", lease)):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and 0 < value < math.inf):
                raise refuse(name, "a positive number of seconds", value)
        if not lease > 3 * timeout:
            raise refuse("lease", f"more than three times timeout ({3 * timeout:g} s)", lease)
        self._owns = isinstance(redis, str)
        if isinstance(redis, str):
            redis = aioredis.Redis.from_url(
                redis, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        self._redis = redis
        self._key = key
        self._timeout = timeout
        self._lease = lease
        self._token = secrets.token_hex(16)
        self._scripts = {
            name: redis.register_script(text)
            for name, text in (
                ("write", _WRITE),
                ("start", _START),
                ("renew", _RENEW),
                ("release", _RELEASE),
            )
        }

    def __repr__(self) -> str:
        return f"RedisJournal(key={self._key!r})"

    @property
    def _hash(self) -> str:
        return f"{self._key}:journal"

    @property
    def _lease_key(self) -> str:
        return f"{self._key}:lease"

    async def _run(self, command: str, *args: Any, script: bool = False) -> Any:
        from redis.exceptions import RedisError

        try:
            with anyio.fail_after(self._timeout):
                if script:
                    keys, argv = args
                    return await self._scripts[command](keys=keys, args=argv)
                return await self._redis.execute_command(command, *args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise JournalUnavailable(
                f"the Redis journal {self._key!r} is unreachable: {exc!r}"
            ) from exc

    async def open(self, fingerprint: str) -> dict[int, ChunkRecord]:
        """See `Journal.open`."""
        lease_ms = int(self._lease * 1000)
        taken = await self._run("SET", self._lease_key, self._token, "NX", "PX", lease_ms)
        if not taken:
            left = await self._run("PTTL", self._lease_key)
            raise JournalLocked(
                f"the Redis journal {self._key!r} is held by another runner (its lease "
                f"lapses in {max(int(left), 0) / 1000:g} s unless renewed); this one sent "
                "nothing"
            )
        try:
            return await self._read(fingerprint)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._let_go()
            raise

    async def _read(self, fingerprint: str) -> dict[int, ChunkRecord]:
        await self._warn_if_evictable()
        where = f"{self._hash!r}"
        flat = await self._run("HGETALL", self._hash)
        fields = (
            dict(flat) if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=False))
        )
        fields = {_bytes(name): value for name, value in fields.items()}
        if not fields:
            if await self._run("EXISTS", f"{self._key}:chunks", f"{self._key}:job"):
                raise JournalUnavailable(
                    f"the Redis journal {self._key!r} was written by an older nim_async "
                    "(keys <key>:job and <key>:chunks); finish that job with it, or delete "
                    "them to start anew; nothing was sent"
                )
            started = await self._run(
                "start", [self._hash, self._lease_key], [self._token, fingerprint], script=True
            )
            if started != 1:
                raise JournalUnavailable(f"the Redis journal {where} changed while opened")
            return {}
        if b"job" not in fields:
            raise JournalUnavailable(
                f"the Redis journal {where} is damaged: its job record is gone (flushed or "
                f"evicted) beside {len(fields)} other fields; nothing was sent"
            )
        try:
            stored = _bytes(fields[b"job"]).decode()
            written = int(_bytes(fields.get(b"chunks", b"")))
        except (UnicodeDecodeError, ValueError):
            raise JournalUnavailable(
                f"the Redis journal {where} is damaged: its job record cannot be read; "
                "nothing was sent"
            ) from None
        refuse_mismatch(stored, fingerprint, where)
        rows = [(name, value) for name, value in fields.items() if name not in _META]
        return read_records(rows, where, written)

    async def _warn_if_evictable(self) -> None:
        from redis.exceptions import RedisError

        try:
            with anyio.fail_after(self._timeout):
                config = await self._redis.config_get("maxmemory-policy")
        except (RedisError, OSError, TimeoutError):
            return  # CONFIG is often disabled on managed Redis: nothing to learn
        policy = next(iter(config.values()), b"")
        policy = policy.decode() if isinstance(policy, bytes) else str(policy)
        if policy.startswith("allkeys"):
            logger.warning(
                "Redis evicts any key under memory pressure (maxmemory-policy=%s): a journal "
                "evicted whole looks like a new job and is sent again; use noeviction",
                policy,
            )

    async def keep_held(self) -> None:
        """Renew the lease every third of its time-to-live until cancelled.

        Raises:
            JournalLocked: The lease was lost (another runner has the journal).
        """
        renewed_at = anyio.current_time()
        while True:
            await anyio.sleep(self._lease / 3)
            try:
                renewed = await self._run(
                    "renew", [self._lease_key], [self._token, int(self._lease * 1000)], script=True
                )
            except JournalUnavailable:
                # One failed round trip is no lost lease: try again while it lasts.
                if anyio.current_time() - renewed_at + self._lease / 3 < self._lease:
                    continue
                raise
            renewed_at = anyio.current_time()
            if renewed != 1:
                raise JournalLocked(
                    f"the Redis journal {self._key!r} lease lapsed and another runner may "
                    "hold it; this runner writes and sends nothing more"
                )

    async def write(self, index: int, record: ChunkRecord) -> None:
        """See `Journal.write`."""
        written = await self._run(
            "write",
            [self._hash, self._lease_key],
            [self._token, index, record.to_json(), int(self._lease * 1000)],
            script=True,
        )
        if written == 0:
            raise JournalLocked(
                f"the Redis journal {self._key!r} is no longer held by this runner (its "
                "lease lapsed); nothing more is written or sent"
            )
        if written != 1:
            raise JournalUnavailable(
                f"the Redis journal {self._hash!r} vanished under the job (flushed or "
                "evicted); nothing more is sent"
            )

    async def _let_go(self) -> None:
        with contextlib.suppress(JournalUnavailable):  # the lease lapses by itself
            await self._run("release", [self._lease_key], [self._token], script=True)

    async def aclose(self) -> None:
        """Give the lease back; close the connection made from a URL (a client you passed
        stays yours)."""
        with anyio.CancelScope(shield=True):
            await self._let_go()
            if self._owns:
                await self._redis.aclose()


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
