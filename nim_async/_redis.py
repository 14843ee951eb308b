"""RedisLimiter: one rate budget shared by every process and host with the same app key.

Each round trip is one atomic Lua script that checks every window of the action
and records slots in all of them together, on Redis's own clock, so hosts with
skewed clocks still agree. A process need not spend a round trip per call:
the waiter that asks for its queue asks for as many slots as the budget's
pace fills in a few round trips, and the slots given back while one write is
on its way go out together in the next. With Redis a few milliseconds away,
one round trip per call would cap a process at a few dozen calls a second
(measured: 41 calls/s for three processes with Redis 20 ms away).
Needs the ``redis`` extra.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.lowlevel import RunVar

from ._errors import LimiterUnavailable
from ._extras import needs_extra
from ._fifo import FifoLock
from ._limits import ActionLimits, Rate
from ._slots import SlotQueue

__all__ = ["RedisLimiter"]

logger = logging.getLogger("nim_async")

# Times are microseconds on Redis's clock (TIME): milliseconds would let a slot
# free up to 1 ms early, and a fast call's arrival sits less than that before
# its release. Doubles hold today's epoch microseconds exactly (< 2^53), and
# Redis passes Lua numbers on with full precision.
# KEYS[1]: the block key; KEYS[2..]: one sorted set per rate, member = slot id,
# score = when the slot frees.
# ARGV[1]: slot id stem; ARGV[2]: slots wanted; ARGV[3]: hold µs; then calls,
# per µs for each rate. Grants as many as every rate has free, up to the wanted
# number, named stem:1, stem:2, ... Answers {1, granted}, {0, µs until a slot
# may free} or {2, µs until the block ends}. "May free": per rate, the nth end
# capped at per, a lower bound whatever the slot is: an answered slot frees at
# its end (answer + per, at most per from now), one in flight not before its
# provisional end nor before per from now (its answer has not come).
# A new slot is provisional: it frees at start + hold + per, so a worker that
# dies mid-call cannot leak capacity for ever (DESIGN §3). Release rewrites it
# to answer + per.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
if blocked > now then return {2, blocked - now} end
local grant = tonumber(ARGV[2])
local hold = tonumber(ARGV[3])
local wait = 0
for i = 2, #KEYS do
  local calls = tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= calls then
    local nth = redis.call('ZRANGE', KEYS[i], count - calls, count - calls, 'WITHSCORES')
    wait = math.max(wait, math.min(tonumber(nth[2]) - now, tonumber(ARGV[2 * i + 1])))
  end
  grant = math.min(grant, calls - count)
end
if grant <= 0 then return {0, wait} end
for i = 2, #KEYS do
  local score = now + hold + tonumber(ARGV[2 * i + 1])
  local members = {}
  for n = 1, grant do
    members[2 * n - 1] = score
    members[2 * n] = ARGV[1] .. ':' .. n
  end
  redis.call('ZADD', KEYS[i], unpack(members))
  redis.call('PEXPIRE', KEYS[i], math.ceil((hold + tonumber(ARGV[2 * i + 1])) / 1000) + 1000)
end
return {1, grant}
"""

# KEYS: the rate sets; ARGV[1..#KEYS]: per µs of each rate; then pairs of slot
# id and µs since its answer (on our clock, measured when the script was sent:
# Redis runs it later, so the end it writes is later than the true one, never
# earlier).
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local per = tonumber(ARGV[i])
  local members = {}
  for n = #KEYS + 1, #ARGV, 2 do
    members[#members + 1] = now - tonumber(ARGV[n + 1]) + per
    members[#members + 1] = ARGV[n]
  end
  redis.call('ZADD', KEYS[i], 'XX', unpack(members))
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

# A process asks for the slots its budget's pace fills in this many round
# trips (at least one slot, at most _MOST_SLOTS_PER_ROUND_TRIP): near Redis it
# asks a slot at a time, and processes sharing the budget interleave finely;
# far from it, one round trip per slot would cap the pace.
_ROUND_TRIPS_AHEAD = 4
_MOST_SLOTS_PER_ROUND_TRIP = 100  # far below the script's unpack() limit
# How fast the round-trip estimate climbs towards a slower round trip.
_RISE = 0.02


class _Budget:
    """One budget as this event loop sees it: its waiters, and its slots on their way back.

    It is the store of its `SlotQueue`: it asks Redis for slots and gives
    them back.
    """

    __slots__ = (
        "key",
        "keys",
        "limiter",
        "limits",
        "pace",
        "rate_keys",
        "releases",
        "waiters",
        "writing",
    )

    def __init__(self, limiter: RedisLimiter, key: str, limits: ActionLimits) -> None:
        self.limiter = limiter
        self.key = key
        self.limits = limits
        self.rate_keys = limiter._keys(key, limits)
        self.keys = [f"{limiter._prefix}:{key}:block", *self.rate_keys]
        # The budget's pace, in calls per second, over its tightest rate.
        self.pace = min(rate.calls / rate.per for rate in limits.rates)
        self.waiters = SlotQueue()
        # The slots given back and not yet being written.
        self.releases = _Releases()
        self.writing = FifoLock()

    @property
    def round_trip(self) -> float:
        """Seconds per acquire round trip at best, as measured: how far away Redis is."""
        return self.limiter._round_trip

    def most(self) -> int:
        """The slots one ask requests at most: the pace of a few round trips, at least one."""
        # Enough slots to keep pace over _ROUND_TRIPS_AHEAD round trips, and no
        # more: a process that takes a whole fresh window works through it
        # alone while the others' CPUs idle (measured: 100 per 0.5 s over
        # loopback fell from 92% to 70% of the budget). The asks on their way
        # together stay within that.
        ahead = _ROUND_TRIPS_AHEAD / self.waiters.asks_in_flight
        most = math.ceil(self.pace * self.round_trip * ahead)
        return max(1, min(most, _MOST_SLOTS_PER_ROUND_TRIP))

    async def ask(self, wanted: int, hold: float) -> tuple[list[str], float, float]:
        """Take up to ``wanted`` slots in Redis, in one atomic script."""
        limiter = self.limiter
        stem = uuid.uuid4().hex
        args: list[object] = [stem, max(1, min(wanted, _MOST_SLOTS_PER_ROUND_TRIP)), _us(hold)]
        for rate in self.limits.rates:
            args += [rate.calls, _us(rate.per)]
        sent = time.monotonic()
        state, value = await limiter._run(limiter._acquire, self.keys, args)
        took = time.monotonic() - sent
        # The floor of the round trips seen: the network's distance, not
        # this process's busy moments (rising slowly, should Redis move away).
        if took < limiter._round_trip or not limiter._round_trip:
            limiter._round_trip = took
        else:
            limiter._round_trip += (took - limiter._round_trip) * _RISE
        if state == 1:
            return [f"{stem}:{number}" for number in range(1, int(value) + 1)], 0.0, 0.0
        wait = int(value) / 1_000_000
        # Blocked (2): the block's end is known. Full (0): the slot that
        # frees first may still be in flight; look again within poll_interval.
        return [], wait if state == 2 else min(wait, limiter._poll), wait

    async def give_back(self, slot_id: str) -> None:
        """Write that ``slot_id`` was answered now: it frees ``per`` from now, not provisionally.

        Slots given back while a write is under way go out together in the
        next one, written by the first of them; the others wait for that write
        without queueing one behind another. Waits for its own write, shielded
        from cancellation (a lost release holds the slot until its provisional
        end), for at most two round trips.
        """
        batch = self.releases
        batch.slots.append((slot_id, time.monotonic()))
        with anyio.CancelScope(shield=True):
            if len(batch.slots) > 1:
                await batch.written.wait()  # the batch's first slot writes it
                return
            try:
                async with self.writing:  # one write at a time
                    # Slots given back from now on go out in the next write.
                    self.releases = _Releases()
                    await self._write(batch.slots)
            finally:
                batch.written.set()

    async def _write(self, releases: list[tuple[str, float]]) -> None:
        now = time.monotonic()
        args: list[object] = [_us(rate.per) for rate in self.limits.rates]
        for released, at in releases:
            # Rounded down: an age rounded up would free the slot early.
            args += [released, int((now - at) * 1_000_000)]
        try:
            await self.limiter._run(self.limiter._release, self.rate_keys, args)
        except LimiterUnavailable:
            # The slots keep their provisional end (start + hold + per):
            # later than needed, never too early.
            logger.warning(
                "could not release a rate-limit slot of %s in Redis: "
                "%d slot(s) keep their provisional end",
                self.key,
                len(releases),
            )


class _Releases:
    """Slots given back, each with when (``time.monotonic()``), to be written together."""

    __slots__ = ("slots", "written")

    def __init__(self) -> None:
        self.slots: list[tuple[str, float]] = []
        self.written = anyio.Event()


def _us(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1_000_000))


class RedisLimiter:
    """Rate limits held in Redis, shared by every process and host.

    Within one event loop, the waiters of one limiter are admitted first come,
    first served, and one round trip asks for slots for several waiters: as
    many as the budget's pace fills in four round trips (measured as it goes),
    at most 100, and no more than wait. A waiting process asks Redis again at
    most ``poll_interval`` seconds later, and sooner when Redis says a slot
    frees sooner: timed, one round trip early, to reach Redis as it frees.

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
        "_budgets",
        "_owns_redis",
        "_poll",
        "_prefix",
        "_redis",
        "_release",
        "_round_trip",
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
        with needs_extra("RedisLimiter", "redis", frozenset({"redis"})):
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
        # Seconds per acquire round trip at best: how far away Redis is.
        self._round_trip = 0.0
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._block = redis.register_script(_BLOCK)
        # Per event loop: this limiter's waiters and releases of each budget.
        self._budgets: RunVar[dict[tuple[str, tuple[Rate, ...]], _Budget]] = RunVar(
            "nim_async_redis_budgets"
        )

    def __repr__(self) -> str:
        return f"RedisLimiter(prefix={self._prefix!r})"

    def _keys(self, key: str, limits: ActionLimits) -> list[str]:
        return [f"{self._prefix}:{key}:{rate.calls}/{_us(rate.per)}" for rate in limits.rates]

    async def _run(self, script: Any, keys: list[str], args: list[object]) -> Any:
        from redis.exceptions import RedisError

        try:
            # A script cancelled mid-reply leaves its pooled connection out of
            # step, and slots it took would be lost to the queue; it is short,
            # so let it finish (within the timeout) and take the cancel at the
            # next checkpoint.
            with anyio.CancelScope(shield=True), anyio.fail_after(self._timeout):
                return await script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise LimiterUnavailable(f"the Redis rate limiter is unreachable: {exc!r}") from exc

    def _budget(self, key: str, limits: ActionLimits) -> _Budget:
        # Per limiter, key and rates: a limiter with another prefix or another
        # Redis holds another budget, and must neither queue behind it nor
        # fail with its Redis.
        try:
            budgets = self._budgets.get()
        except LookupError:
            budgets = {}
            self._budgets.set(budgets)
        budget_key = (key, limits.rates)
        budget = budgets.get(budget_key)
        if budget is None:
            budget = budgets[budget_key] = _Budget(self, key, limits)
        return budget

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
            SlotTimeout: The client bounded the wait (``max_wait``) and Redis
                says the next slot frees later than that; raised at once, with
                the time the slot is away (a lower bound while the call holding
                it is in flight).
        """
        budget = self._budget(key, limits)
        slot_id = await budget.waiters.wait_for_slot(hold, budget)
        try:
            yield
        finally:
            await budget.give_back(slot_id)

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
