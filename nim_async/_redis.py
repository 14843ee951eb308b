"""RedisLimiter: one rate budget shared by every process and host with the same app key.

Each round trip is one atomic Lua script that checks every window of the action
and records slots in all of them together, on Redis's own clock, so hosts with
skewed clocks still agree. A slot that frees within a few round trips is taken
ahead, timed to the microsecond on Redis's clock, so a full budget is not
polled. A process need not spend a round trip per call:
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
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.lowlevel import RunVar

from ._errors import LimiterUnavailable
from ._extras import needs_extra
from ._fifo import FifoLock
from ._limits import ActionLimits, Rate, current_wait_bound
from ._slots import SlotQueue, slot_timeout

__all__ = ["RedisLimiter"]

logger = logging.getLogger("nim_async")

# Times are microseconds on Redis's clock (TIME): milliseconds would let a slot
# free up to 1 ms early, and a fast call's arrival sits less than that before
# its release. Doubles hold today's epoch microseconds exactly (< 2^53), and
# Redis passes Lua numbers on with full precision.
# KEYS[1]: the block key; KEYS[2..]: one sorted set per rate, member = slot id,
# score = when the slot frees.
# ARGV[1]: slot id stem; ARGV[2]: slots wanted; ARGV[3]: hold µs; ARGV[4]: reach
# µs; then calls, per µs for each rate. Grants up to the wanted number, named
# stem:1, stem:2, ...: a slot free now starts now; beyond those, the nth slot
# takes the place of the slot that frees nth, if it frees within reach, and
# starts when it frees (pre-scheduled: the waiter sleeps until then, no second
# round trip). The two are one entry: the old slot held its place until its end,
# the new one holds it from then, so no window ever holds more than calls.
# Answers {1, granted, now, µs until each starts...}, {0, µs until a slot may
# free, 1 if that is its known end else 0, now} or {2, µs until the block
# ends, now}; now on Redis's clock, for _RedisClock.
# "May free": per rate, the end of the first slot needed, capped at per, a lower
# bound whatever the slot is: an answered slot frees at its end (answer + per,
# at most per from now), one in flight not before its provisional end nor
# before per from now (its answer has not come).
# A new slot is provisional: it frees at start + hold + per, so a worker that
# dies mid-call cannot leak capacity for ever (the rate-limit rule above). Release rewrites it
# to answer + per.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
if blocked > now then return {2, blocked - now, now} end
local grant = tonumber(ARGV[2])
local hold = tonumber(ARGV[3])
local reach = now + tonumber(ARGV[4])
local starts = {}
for n = 1, grant do starts[n] = now end
local freeing = {}
local wait, known = 0, 1
for i = 2, #KEYS do
  local calls = tonumber(ARGV[2 * i + 1])
  local per = tonumber(ARGV[2 * i + 2])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local free = calls - redis.call('ZCARD', KEYS[i])
  local ends = {}
  if grant > free then
    ends = redis.call('ZRANGE', KEYS[i], 0, grant - free - 1, 'WITHSCORES')
    for n = math.max(free, 0) + 1, grant do
      local at = tonumber(ends[2 * (n - free)])
      if at == nil or at > reach then
        if at ~= nil and n == math.max(free, 0) + 1 then
          wait = math.max(wait, math.min(at - now, per))
          if at > now + per then known = 0 end
        end
        grant = n - 1
        break
      end
      if at > starts[n] then starts[n] = at end
    end
  end
  freeing[i] = {free, ends}
end
if grant <= 0 then return {0, wait, known, now} end
local answer = {1, grant, now}
for n = 1, grant do answer[n + 3] = starts[n] - now end
for i = 2, #KEYS do
  local per = tonumber(ARGV[2 * i + 2])
  local free, ends = freeing[i][1], freeing[i][2]
  local gone, members = {}, {}
  for n = 1, grant do
    if n > free then gone[#gone + 1] = ends[2 * (n - free) - 1] end
    members[2 * n - 1] = starts[n] + hold + per
    members[2 * n] = ARGV[1] .. ':' .. n
  end
  if #gone > 0 then redis.call('ZREM', KEYS[i], unpack(gone)) end
  redis.call('ZADD', KEYS[i], unpack(members))
  redis.call('PEXPIRE', KEYS[i], math.ceil((tonumber(ARGV[4]) + hold + per) / 1000) + 1000)
end
return answer
"""

# KEYS: the rate sets; ARGV[1..#KEYS]: per µs of each rate; then, per slot,
# its id, µs since its answer (on our clock, measured when the script was sent:
# Redis runs it later, so the end it writes is later than the true one, never
# earlier) and the latest its answer can have been on Redis's clock as
# _RedisClock bounds it (0 if unknown): the earlier of the two ends is written,
# so a write that waited for its connection or its turn does not hold the slot
# longer. For a pre-scheduled slot given back unused, the age is minus the end
# (Redis µs) of the slot whose place it took: nothing was sent, so the place is
# that slot's again.
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local per = tonumber(ARGV[i])
  local members = {}
  for n = #KEYS + 1, #ARGV, 3 do
    local age = tonumber(ARGV[n + 1])
    local answered = tonumber(ARGV[n + 2])
    local score
    if age < 0 then
      score = -age
    else
      score = now - age + per
      if answered > 0 and answered + per < score then score = answered + per end
    end
    members[#members + 1] = score
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
# How far ahead an ask takes slots that free later (pre-scheduled), in round
# trips, and at least _LEAST_REACH seconds, at most half the shortest period.
# A slot that frees within reach is taken at once, timed to the microsecond,
# instead of by an ask that must land as it frees (measured with Redis 5 ms
# away: a full budget polled every 20 ms started each window 25 ms late at the
# median, 20 to 120 ms for its last slots). Short, because a block recorded by
# another process reaches a pre-scheduled waiter only at its next ask, and
# because slots taken ahead go to one process's queue.
_REACH_ROUND_TRIPS = 4
_LEAST_REACH = 0.005


# How long a round trip's reading of Redis's clock is trusted, and the margin
# added for the clocks' drift meanwhile (500 ppm, the most NTP slews a clock).
_CLOCK_MEMORY = 2.0
_DRIFT_MARGIN_US = 1000


class _RedisClock:
    """Bounds on Redis's clock against ours, from the round trips of the last seconds.

    A script that read Redis's clock (TIME) as ``R`` ran between our sending
    and our reading its answer, so ``R - received <= offset <= R - sent``
    where ``offset`` is Redis's clock minus ours. The tightest bounds come from
    the quickest round trips, not from the one at hand, which may have waited
    for a busy event loop.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        # (sent, lowest offset, highest offset), µs, oldest first.
        self._seen: deque[tuple[float, int, int]] = deque()

    def note(self, sent: float, received: float, redis_us: int) -> None:
        """Note a script sent at ``sent``, answered at ``received`` (ours), run at ``redis_us``."""
        # Rounded outwards, and TIME's reading may be up to 1 µs behind.
        self._seen.append((sent, redis_us - _us_ceil(received), redis_us + 1 - _us_floor(sent)))
        while self._seen and self._seen[0][0] < sent - _CLOCK_MEMORY:
            self._seen.popleft()

    def bounds(self) -> tuple[int, int] | None:
        """The lowest and highest offset (µs) the recent round trips allow, or None."""
        if not self._seen:
            return None
        low = max(seen[1] for seen in self._seen) - _DRIFT_MARGIN_US
        high = min(seen[2] for seen in self._seen) + _DRIFT_MARGIN_US
        return low, high


class _Budget:
    """One budget as this event loop sees it: its waiters, and its slots on their way back.

    It is the store of its `SlotQueue`: it asks Redis for slots and gives
    them back.
    """

    __slots__ = (
        "blocked_until",
        "key",
        "keys",
        "latest_start",
        "limiter",
        "limits",
        "pace",
        "rate_keys",
        "releases",
        "shortest",
        "starts",
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
        self.shortest = min(rate.per for rate in limits.rates)
        # Pre-scheduled slots: when each may start (time.monotonic()), and the
        # end (Redis µs) of the slot whose place it took.
        self.starts: dict[str, tuple[float, int]] = {}
        # The latest start handed out: a later waiter never starts before an
        # earlier one of this queue (first come, first served).
        self.latest_start = 0.0
        # A block recorded through this limiter (time.monotonic()): a waiter
        # woken at its pre-scheduled start looks here before it sends.
        self.blocked_until = 0.0
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

    def reach(self) -> float:
        """Seconds ahead within which an ask takes slots that free later."""
        reach = max(_REACH_ROUND_TRIPS * self.round_trip, _LEAST_REACH)
        return min(reach, self.shortest / 2)

    async def ask(self, wanted: int, hold: float) -> tuple[list[str], float, float]:
        """Take up to ``wanted`` slots in Redis, in one atomic script."""
        limiter = self.limiter
        stem = uuid.uuid4().hex
        reach = self.reach()
        args: list[object] = [
            stem,
            max(1, min(wanted, _MOST_SLOTS_PER_ROUND_TRIP)),
            _us(hold),
            int(reach * 1_000_000),
        ]
        for rate in self.limits.rates:
            args += [rate.calls, _us(rate.per)]
        sent = time.monotonic()
        answer = await limiter._run(limiter._acquire, self.keys, args)
        received = time.monotonic()
        took = received - sent
        # The floor of the round trips seen: the network's distance, not
        # this process's busy moments (rising slowly, should Redis move away).
        if took < limiter._round_trip or not limiter._round_trip:
            limiter._round_trip = took
        else:
            limiter._round_trip += (took - limiter._round_trip) * _RISE
        state = answer[0]
        clock = limiter._clock
        clock.note(sent, received, int(answer[2] if state == 1 else answer[-1]))
        if state == 1:
            granted = [f"{stem}:{number}" for number in range(1, int(answer[1]) + 1)]
            now = int(answer[2])
            # Redis's clock is at least the low bound ahead of ours: a start
            # read through it is never earlier than the true one.
            bounds = clock.bounds()
            low = now - _us_ceil(received) if bounds is None else bounds[0]
            for slot_id, delay in zip(granted, answer[3:], strict=True):
                at = now + int(delay)
                start = max((at - low) / 1_000_000, self.latest_start)
                if start > received:
                    self.starts[slot_id] = (start, at)
                    self.latest_start = start
            return granted, 0.0, 0.0
        distance = int(answer[1]) / 1_000_000
        if state == 2:  # blocked: the block's end is known
            return [], distance, distance
        if answer[2]:
            # The first slot needed frees then, and nothing in flight can free
            # sooner (its answer is yet to come): ask once, when that slot is
            # within reach.
            return [], max(distance - reach / 2, 0.0), distance
        # The first slot needed is in flight: its answer may come any moment.
        return [], min(distance, limiter._poll), distance

    async def release(self, slot_id: str) -> None:
        """Write that ``slot_id`` was answered now: it frees ``per`` from now, not provisionally.

        Slots given back while a write is under way go out together in the
        next one, written by the first of them; the others wait for that write
        without queueing one behind another. Waits for its own write, shielded
        from cancellation (a lost release holds the slot until its provisional
        end), for at most two round trips.
        """
        self.starts.pop(slot_id, None)
        await self._give_back(slot_id, time.monotonic())

    async def give_back(self, slot_id: str) -> None:
        """Return a slot never used: a pre-scheduled one goes back to the slot it replaced,
        one granted to start at once is written as answered now."""
        start = self.starts.pop(slot_id, None)
        await self._give_back(slot_id, time.monotonic() if start is None else -start[1])

    async def _give_back(self, slot_id: str, at: float) -> None:
        batch = self.releases
        batch.slots.append((slot_id, at))
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
        bounds = self.limiter._clock.bounds()
        for released, at in releases:
            if at < 0:  # the end to restore (see _RELEASE)
                args += [released, int(at), 0]
                continue
            # Rounded down: an age rounded up would free the slot early.
            age = int((now - at) * 1_000_000)
            args += [released, age, 0 if bounds is None else _us_ceil(at) + bounds[1]]
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
    """Slots given back, each with when (``time.monotonic()``), to be written together.

    An unused pre-scheduled slot carries instead minus the end to restore.
    """

    __slots__ = ("slots", "written")

    def __init__(self) -> None:
        self.slots: list[tuple[str, float]] = []
        self.written = anyio.Event()


async def _wait_for_start(budget: _Budget, slot_id: str, start: float) -> bool:
    """Sleep until a pre-scheduled slot starts; whether it may be used then.

    A slot that starts past the waiter's bound, or whose waiter is cancelled
    meanwhile, goes back unused. So does one that starts during a block
    recorded here meanwhile; then the waiter queues again (the next ask meets
    the block in Redis).

    Raises:
        SlotTimeout: The slot starts later than the waiter's bound allows.
    """
    bound = current_wait_bound()
    distance = start - time.monotonic()
    if bound is not None and anyio.current_time() + distance > bound.deadline:
        with anyio.CancelScope(shield=True):
            await budget.give_back(slot_id)
        raise slot_timeout(distance)
    try:
        await anyio.sleep(max(distance, 0.0))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await budget.give_back(slot_id)
        raise
    if budget.blocked_until > time.monotonic():
        with anyio.CancelScope(shield=True):
            await budget.give_back(slot_id)
        return False
    budget.starts.pop(slot_id, None)
    return True


def _us_floor(seconds: float) -> int:
    return math.floor(seconds * 1_000_000)


def _us_ceil(seconds: float) -> int:
    return math.ceil(seconds * 1_000_000)


def _us(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1_000_000))


class RedisLimiter:
    """Rate limits held in Redis, shared by every process and host.

    Within one event loop, the waiters of one limiter are admitted first come,
    first served, and one round trip asks for slots for several waiters: as
    many as the budget's pace fills in four round trips (measured as it goes),
    at most 100, and no more than wait. A slot that frees within a few round
    trips is taken at once, to start the moment it frees: its waiter sleeps
    until then, with no second round trip. When the next slot to free is
    answered and further away, the process asks again once, as it comes within
    reach; when that slot's call is still in flight (it frees no sooner than
    ``per`` after its answer, which may come any moment), it asks again
    ``poll_interval`` seconds later.

    Args:
        redis: A ``redis://`` URL, or a ``redis.asyncio.Redis``. For a URL a
            ``BlockingConnectionPool`` is used: under a burst of waiters it
            waits for a connection where the default pool would raise.
        prefix: The start of every key this limiter writes.
        poll_interval: How long a waiting process sleeps before asking again
            while the next slot to free belongs to a call still in flight.
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
        "_clock",
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
        self._clock = _RedisClock()
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
        while True:
            slot_id = await budget.waiters.wait_for_slot(hold, budget)
            start = budget.starts.get(slot_id)
            if start is None or await _wait_for_start(budget, slot_id, start[0]):
                break
        try:
            yield
        finally:
            await budget.release(slot_id)

    async def block(self, key: str, limits: ActionLimits, seconds: float) -> None:
        """Admit no call for ``key``, in any process, until ``seconds`` from now.

        Raises:
            LimiterUnavailable: Redis cannot be reached.
        """
        await self._run(self._block, [f"{self._prefix}:{key}:block"], [_us(seconds)])
        try:
            budgets = self._budgets.get()
        except LookupError:
            return
        until = time.monotonic() + seconds
        for (budget_key, _), budget in budgets.items():
            if budget_key == key:
                budget.blocked_until = max(budget.blocked_until, until)

    async def aclose(self) -> None:
        """Close the connection pool made from a URL; a Redis client you passed stays yours."""
        if self._owns_redis:
            await self._redis.aclose(close_connection_pool=True)
