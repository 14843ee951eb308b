"""RedisLimiter: one rate budget shared by every process and host with the same app key.

Each acquire is one atomic Lua script that checks every window of the action
and records the slot in all of them together, on Redis's own clock, so hosts
with skewed clocks still agree. Needs the ``redis`` extra.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.lowlevel import RunVar

from ._errors import LimiterUnavailable
from ._limits import ActionLimits

__all__ = ["RedisLimiter"]

logger = logging.getLogger("nim_async")

# Times are microseconds on Redis's clock (TIME): milliseconds would let a slot
# free up to 1 ms early, and a fast call's arrival sits less than that before
# its release. Doubles hold today's epoch microseconds exactly (< 2^53), and
# Redis passes Lua numbers on with full precision.
# KEYS[1]: the block key; KEYS[2..]: one sorted set per rate, member = slot id,
# score = when the slot frees.
# ARGV[1]: slot id; ARGV[2]: hold µs; then calls, per µs for each rate.
# A new slot is provisional: it frees at start + hold + per, so a worker that
# dies mid-call cannot leak capacity for ever (DESIGN §3). Release rewrites it
# to answer + per.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
if blocked > now then return {2, blocked - now} end
local hold = tonumber(ARGV[2])
local wait = 0
for i = 2, #KEYS do
  local calls = tonumber(ARGV[2 * i - 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= calls then
    local nth = redis.call('ZRANGE', KEYS[i], count - calls, count - calls, 'WITHSCORES')
    wait = math.max(wait, tonumber(nth[2]) - now)
  end
end
if wait > 0 then return {0, wait} end
for i = 2, #KEYS do
  local per = tonumber(ARGV[2 * i])
  redis.call('ZADD', KEYS[i], now + hold + per, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], math.ceil((hold + per) / 1000) + 1000)
end
return {1, 0}
"""

# KEYS: the rate sets; ARGV[1]: slot id; ARGV[2..]: per µs of each rate.
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + tonumber(ARGV[i + 1]), ARGV[1])
end
return 1
"""

# KEYS[1]: the block key; ARGV[1]: block µs. Never shortens a longer block.
_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_us = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_us > current then
  local ttl_ms = math.ceil(tonumber(ARGV[1]) / 1000) + 1000
  redis.call('SET', KEYS[1], until_us, 'PX', ttl_ms)
end
return 1
"""


class _Queue:
    """One budget's waiters in this event loop, and the Redis failures met at their head.

    Only the head waiter talks to Redis. When its round trip fails, every waiter
    queued behind it fails at once, not one ``timeout`` after another (issue 9):
    a hung Redis would otherwise fail the hundredth waiter after 100 timeouts.
    A waiter that queues after the failure asks Redis itself, so nothing stays
    open once Redis answers again.
    """

    __slots__ = ("failure", "failures", "lock")

    def __init__(self) -> None:
        self.lock = anyio.Lock()  # anyio's Lock wakes its waiters in FIFO order
        self.failures = 0
        self.failure = ""


_local_queues: RunVar[dict[str, _Queue]] = RunVar("nim_async_redis_queues")


def _us(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1_000_000))


class RedisLimiter:
    """Rate limits held in Redis, shared by every process and host.

    Within one process, waiters are admitted first come, first served; across
    processes each process's head waiter polls Redis at most every
    ``poll_interval`` seconds, and sooner when Redis says a slot frees sooner.

    Args:
        redis: A ``redis://`` URL, or a ``redis.asyncio.Redis``. For a URL a
            ``BlockingConnectionPool`` is used: under a burst of waiters it
            waits for a connection where the default pool would raise.
        prefix: The start of every key this limiter writes.
        poll_interval: The longest a waiting process sleeps before asking again.
        timeout: The longest one Redis round trip may take before the call
            fails with ``LimiterUnavailable`` (a hung Redis must not hang sends).
            Waiters queued behind a round trip that fails fail with it, so none
            waits on an unanswering Redis longer than this; time spent waiting
            for a slot of a full budget is not bounded by it.
    """

    __slots__ = (
        "_acquire",
        "_block",
        "_owns_redis",
        "_poll",
        "_prefix",
        "_redis",
        "_release",
        "_timeout",
    )

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "nim",
        poll_interval: float = 0.02,
        timeout: float = 5.0,
    ) -> None:
        import redis.asyncio as aioredis

        self._owns_redis = isinstance(redis, str)
        if isinstance(redis, str):
            pool = aioredis.BlockingConnectionPool.from_url(
                redis,
                max_connections=32,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
            redis = aioredis.Redis(connection_pool=pool)
        self._redis = redis
        self._prefix = prefix
        self._poll = poll_interval
        self._timeout = timeout
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._block = redis.register_script(_BLOCK)

    def __repr__(self) -> str:
        return f"RedisLimiter(prefix={self._prefix!r})"

    def _keys(self, key: str, limits: ActionLimits) -> list[str]:
        return [f"{self._prefix}:{key}:{rate.calls}/{_us(rate.per)}" for rate in limits.rates]

    async def _run(self, script: Any, keys: list[str], args: list[object]) -> Any:
        from redis.exceptions import RedisError

        try:
            # A script cancelled mid-reply leaves its pooled connection out of
            # step; it is short, so let it finish (within the timeout) and take
            # the cancel at the next checkpoint.
            with anyio.CancelScope(shield=True), anyio.fail_after(self._timeout):
                return await script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise LimiterUnavailable(f"the Redis rate limiter is unreachable: {exc!r}") from exc

    def _queue(self, key: str) -> _Queue:
        # Per budget (prefix and key): limiters with another prefix hold another
        # budget, and must neither queue behind it nor fail with its Redis.
        try:
            queues = _local_queues.get()
        except LookupError:
            queues = {}
            _local_queues.set(queues)
        budget = f"{self._prefix}:{key}"
        queue = queues.get(budget)
        if queue is None:
            queue = queues[budget] = _Queue()
        return queue

    @asynccontextmanager
    async def slot(self, key: str, limits: ActionLimits, *, hold: float) -> AsyncIterator[None]:
        """Wait for a free slot of every rate of ``key`` in Redis; hold it while the body runs.

        Guarantees, across every process sharing the Redis and the prefix, that
        for each rate the slots taken (in flight, or answered less than ``per``
        seconds ago) never exceed ``calls``, and that none is taken during a block.

        Raises:
            LimiterUnavailable: Redis cannot be reached: a round trip of this
                waiter failed, or one of a waiter ahead of it did while it was
                queued. Nothing was sent.
        """
        slot_id = uuid.uuid4().hex
        rate_keys = self._keys(key, limits)
        args: list[object] = [slot_id, _us(hold)]
        for rate in limits.rates:
            args += [rate.calls, _us(rate.per)]
        queue = self._queue(key)
        failures = queue.failures
        async with queue.lock:
            if queue.failures != failures:
                raise LimiterUnavailable(
                    f"{queue.failure} (met by a waiter ahead of this one); nothing was sent"
                )
            while True:
                try:
                    state, wait_us = await self._run(
                        self._acquire, [f"{self._prefix}:{key}:block", *rate_keys], args
                    )
                except LimiterUnavailable as exc:
                    queue.failures += 1
                    queue.failure = str(exc)
                    raise
                if state == 1:
                    break
                # Blocked (2): the block's end is known. Full (0): the slot that
                # frees first may still be in flight, with a provisional end.
                wait = int(wait_us) / 1_000_000
                await anyio.sleep(wait if state == 2 else min(wait, self._poll))
        try:
            yield
        finally:
            try:
                await self._run(
                    self._release,
                    rate_keys,
                    [slot_id, *(_us(rate.per) for rate in limits.rates)],
                )
            except LimiterUnavailable:
                # The slot keeps its provisional end (start + hold + per):
                # later than needed, never too early.
                logger.warning("could not release a rate-limit slot of %s in Redis", key)

    async def block(self, key: str, limits: ActionLimits, seconds: float) -> None:
        """Admit no call for ``key``, in any process, until ``seconds`` from now.

        Raises:
            LimiterUnavailable: Redis cannot be reached.
        """
        await self._run(self._block, [f"{self._prefix}:{key}:block"], [_us(seconds)])

    async def aclose(self) -> None:
        """Close the connection pool made from a URL; a Redis client you passed stays yours."""
        if self._owns_redis:
            await self._redis.aclose(close_connection_pool=True)
