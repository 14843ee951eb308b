"""RedisLimiter: one budget shared by every client, process and host, on Redis's clock."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.abc
import pytest
import redis.asyncio as aioredis

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, free_port, make_client

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

# Correctness only (zero 416, every call once): the share of the budget used is
# measured by benchmarks/bench_limits.py at 0.5 s windows.
SCALE = 0.25
LIMITS = nim.RateLimits.default().scaled(SCALE)  # 100 calls per 0.25 s, block 2.5 s
ATTACH = LIMITS.for_action("msg/sendAttachMsg")
ROOT = Path(__file__).parent.parent
# Redis's clock (TIME, the wall clock) against ours (monotonic): the rates agree,
# the readings differ by well under this.
CLOCKS = 0.005


async def test_clients_with_separate_redis_limiters_share_one_budget(redis_url: str) -> None:
    """Three clients, each with its own RedisLimiter and pool: 300 calls, zero 416, none twice."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=LIMITS)
    limiters = [nim.RedisLimiter(redis_url, prefix="share") for _ in range(3)]
    clients = [
        make_client(emulator, rate_limits=LIMITS, limiter=limiter, retry=nim.RetryPolicy())
        for limiter in limiters
    ]
    async with anyio.create_task_group() as group:
        for number in range(300):
            group.start_soon(clients[number % 3].send_attach_msg, "alice", f"user{number}", "x")
    for client, limiter in zip(clients, limiters, strict=True):
        await client.aclose()
        await limiter.aclose()

    assert emulator.rate_limited == 0
    assert [call.code for call in emulator.calls] == [200] * 300
    assert sorted(m.to for m in emulator.messages) == sorted(f"user{n}" for n in range(300))


async def test_a_block_recorded_by_one_limiter_holds_every_other(redis_url: str) -> None:
    """After a 416 in one process, no other process starts that action until the block ends."""
    first = nim.RedisLimiter(redis_url, prefix="block")
    own_client = aioredis.Redis.from_url(redis_url)
    second = nim.RedisLimiter(own_client, prefix="block")
    started = time.monotonic()
    await first.block("app:msg/sendMsg", ATTACH, 0.3)
    async with second.slot("app:msg/sendMsg", ATTACH, hold=1):
        assert time.monotonic() - started >= 0.3 - CLOCKS
    await first.aclose()
    await second.aclose()
    assert await own_client.ping()  # a client passed in is not closed by the limiter
    await own_client.aclose()


async def test_a_slot_frees_per_seconds_after_its_answer(redis_url: str) -> None:
    """Budget 2 per 0.3 s: the third call starts no sooner than 0.3 s after the first answer."""
    limiter = nim.RedisLimiter(redis_url, prefix="slots")
    two = nim.ActionLimits((nim.Rate(2, 0.3),), block=0)
    answered = []
    for _ in range(2):
        async with limiter.slot("app:x", two, hold=5):
            answered.append(time.monotonic())  # before the release that sets the slot's end
    # The first slot frees first: the third call needs one slot, not both, and on
    # a loaded machine the second answer can come well after the first.
    async with limiter.slot("app:x", two, hold=5):
        assert time.monotonic() - answered[0] >= 0.3 - CLOCKS
    await limiter.aclose()


async def test_every_window_is_checked_and_recorded_together(redis_url: str) -> None:
    """Broadcast's two rates: the per-day budget stops calls the per-minute one would admit."""
    limiter = nim.RedisLimiter(redis_url, prefix="two")
    limits = nim.ActionLimits((nim.Rate(10, 0.05), nim.Rate(3, 60)), block=0)
    for _ in range(3):
        async with limiter.slot("app:msg/broadcastMsg", limits, hold=1):
            pass
    with anyio.move_on_after(0.1) as scope:
        async with limiter.slot("app:msg/broadcastMsg", limits, hold=1):
            pass
    assert scope.cancelled_caught
    await limiter.aclose()


async def test_a_crashed_holder_frees_its_slot_after_hold_plus_per(redis_url: str) -> None:
    """A slot never released (a dead worker) counts until start + hold + per, then frees."""
    limiter = nim.RedisLimiter(redis_url, prefix="crash")
    one = nim.ActionLimits((nim.Rate(1, 0.1),), block=0)
    slot = limiter.slot("app:y", one, hold=0.2)
    started = time.monotonic()
    await slot.__aenter__()  # entered and never left, as a killed process would
    async with limiter.slot("app:y", one, hold=0.2):
        waited = time.monotonic() - started
    # Not before start + hold + per; before the key's own expiry (1.3 s) would free it.
    assert 0.3 - CLOCKS <= waited < 1.25
    await limiter.aclose()


async def test_keys_expire_on_their_own(redis_url: str) -> None:
    """Nothing the limiter writes lives for ever."""
    limiter = nim.RedisLimiter(redis_url, prefix="ttl")
    async with limiter.slot("app:z", ATTACH, hold=1):
        pass
    await limiter.block("app:z", ATTACH, 0.5)
    redis = aioredis.Redis.from_url(redis_url)
    keys = await redis.keys("ttl:*")
    assert len(keys) == 2
    for key in keys:
        assert 0 < await redis.pttl(key) <= 3000
    await redis.aclose()
    await limiter.aclose()


async def test_slot_ends_keep_every_microsecond(redis_url: str) -> None:
    """Milliseconds would free a slot up to 1 ms early: more than a fast call's margin."""
    limiter = nim.RedisLimiter(redis_url, prefix="us")
    half_second = nim.ActionLimits((nim.Rate(100, 0.5),), block=5)
    for _ in range(6):
        async with limiter.slot("app:w", half_second, hold=1):
            await anyio.sleep(0.001)
    redis = aioredis.Redis.from_url(redis_url)
    ends = [
        int(end) for _, end in await redis.zrange("us:app:w:100/500000", 0, -1, withscores=True)
    ]
    assert len(ends) == 6
    assert all(abs(end / 1_000_000 - time.time()) < 5 for end in ends)
    assert any(end % 1000 for end in ends)
    await redis.aclose()
    await limiter.aclose()


async def test_an_unreachable_redis_fails_the_call_before_sending() -> None:
    """A Redis outage raises LimiterUnavailable; the call is not sent unlimited."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limiter = nim.RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
    async with make_client(
        emulator,
        rate_limits=nim.RateLimits.default(),
        limiter=limiter,
        retry=nim.RetryPolicy(max_attempts=1),
    ) as client:
        with pytest.raises(nim.LimiterUnavailable, match="Redis"):
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert emulator.calls == []
    assert isinstance(nim.LimiterUnavailable("x"), nim.NimError)


def test_the_repr_names_the_prefix_only(redis_url: str) -> None:
    """No URL (which may hold a password) in the repr."""
    assert repr(nim.RedisLimiter(redis_url, prefix="p")) == "RedisLimiter(prefix='p')"


def test_three_processes_share_the_budget_with_zero_416(redis_url: str) -> None:
    """Three worker processes, one emulator on a loopback port, one Redis budget.

    Each sends 100 calls at once, all three together: zero 416, every call once.
    """
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=LIMITS)
    with emulator.serve() as base_url:
        command = [sys.executable, "-m", "tests._worker", base_url, redis_url, "100", str(SCALE)]
        workers = [
            subprocess.Popen(
                [*command, f"w{worker}"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for worker in range(3)
        ]
        try:
            for worker in workers:
                assert worker.stdout is not None
                assert worker.stdout.readline() == "ready\n"
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            outputs = [worker.communicate(timeout=60)[0] for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0, 0]
    assert [int(output) for output in outputs] == [100, 100, 100]
    assert emulator.rate_limited == 0
    assert [call.code for call in emulator.calls] == [200] * 300
    expected = sorted(f"w{worker}-{number}" for worker in range(3) for number in range(100))
    assert sorted(m.to for m in emulator.messages) == expected


async def test_a_hung_redis_fails_within_the_timeout() -> None:
    """A Redis that accepts but never answers: LimiterUnavailable after `timeout`, not a hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        limiter = nim.RedisLimiter(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(nim.LimiterUnavailable):
            async with limiter.slot("app:hung", ATTACH, hold=1):
                pass
        assert time.monotonic() - started < 3


# A hang must end; this bounds one (20 waiters of 0.3 s each would take 6 s), it
# does not measure speed, so a loaded machine has room.
HANG_BOUND = 3.0


async def _acquire_all(
    limiter: nim.RedisLimiter, waiters: int, limits: nim.ActionLimits = ATTACH
) -> list[BaseException | None]:
    """Start ``waiters`` slot acquisitions of one key together; return how each ended."""
    outcomes: list[BaseException | None] = []

    async def acquire() -> None:
        try:
            async with limiter.slot("app:k", limits, hold=1):
                pass
        except nim.LimiterUnavailable as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)

    async with anyio.create_task_group() as group:
        for _ in range(waiters):
            group.start_soon(acquire)
    return outcomes


class _Switch:
    """A loopback port in front of redis-server that swallows every command while ``hung``,
    and passes everything on ``delay`` seconds late (Redis a network hop away)."""

    def __init__(self, redis_url: str, port: int) -> None:
        self.hung = False
        self.delay = 0.0
        self.url = f"redis://127.0.0.1:{port}/0"
        self._upstream = int(redis_url.rsplit(":", 1)[1].split("/")[0])

    async def handle(self, client: anyio.abc.SocketStream) -> None:
        async with (
            client,
            await anyio.connect_tcp("127.0.0.1", self._upstream) as upstream,
            anyio.create_task_group() as group,
        ):
            group.start_soon(self._pipe, client, upstream, group, True)
            group.start_soon(self._pipe, upstream, client, group, False)

    async def _pipe(
        self,
        source: anyio.abc.SocketStream,
        sink: anyio.abc.SocketStream,
        group: anyio.abc.TaskGroup,
        swallow: bool,
    ) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            async for chunk in source:
                if self.delay:
                    await anyio.sleep(self.delay)
                if not (swallow and self.hung):
                    await sink.send(chunk)
        group.cancel_scope.cancel()  # one side closed: close the other


@asynccontextmanager
async def _switchable(redis_url: str) -> AsyncIterator[_Switch]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    switch = _Switch(redis_url, listener.extra(anyio.abc.SocketAttribute.local_port))
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, switch.handle)
        yield switch
        group.cancel_scope.cancel()


async def test_waiters_queued_behind_a_hung_redis_fail_together() -> None:
    """20 waiters on a Redis that never answers fail within one timeout, not one after another."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        limiter = nim.RedisLimiter(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=0.3)
        started = time.monotonic()
        outcomes = await _acquire_all(limiter, 20)
        assert time.monotonic() - started < HANG_BOUND
        await limiter.aclose()
    assert len(outcomes) == 20
    assert all(isinstance(outcome, nim.LimiterUnavailable) for outcome in outcomes)
    assert sum("nothing was sent" in str(outcome) for outcome in outcomes) == 19


async def test_a_hung_redis_fails_only_the_waiters_of_its_own_limiter(redis_url: str) -> None:
    """Two limiters with one prefix, one on a Redis that never answers: the waiters of the
    healthy one get in while those of the other fail."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        hung = nim.RedisLimiter(
            f"redis://127.0.0.1:{silent.getsockname()[1]}/0", prefix="pair", timeout=0.3
        )
        healthy = nim.RedisLimiter(redis_url, prefix="pair", timeout=0.3)
        outcomes: dict[str, list[BaseException | None]] = {}

        async def run(name: str, limiter: nim.RedisLimiter) -> None:
            outcomes[name] = await _acquire_all(limiter, 5)

        with anyio.fail_after(HANG_BOUND):
            async with anyio.create_task_group() as group:
                group.start_soon(run, "hung", hung)
                group.start_soon(run, "healthy", healthy)
        await hung.aclose()
        await healthy.aclose()
    assert outcomes["healthy"] == [None] * 5
    assert all(isinstance(outcome, nim.LimiterUnavailable) for outcome in outcomes["hung"])


async def test_a_limiter_works_again_once_redis_answers(redis_url: str) -> None:
    """After a hang failed its waiters, the same limiter takes slots as soon as Redis answers."""
    async with _switchable(redis_url) as switch:
        limiter = nim.RedisLimiter(switch.url, prefix="back", timeout=0.3)
        switch.hung = True
        assert all(outcome is not None for outcome in await _acquire_all(limiter, 5))
        switch.hung = False
        assert await _acquire_all(limiter, 20) == [None] * 20
        await limiter.aclose()


async def test_waiting_for_a_full_budget_is_not_bounded_by_the_timeout(redis_url: str) -> None:
    """Healthy Redis, 1 call per 0.3 s, timeout 0.25 s: the fourth waiter waits 0.9 s, gets in."""
    limiter = nim.RedisLimiter(redis_url, prefix="full", timeout=0.25)
    one = nim.ActionLimits((nim.Rate(1, 0.3),), block=0)
    started = time.monotonic()
    assert await _acquire_all(limiter, 4, one) == [None] * 4
    assert time.monotonic() - started >= 0.9 - CLOCKS
    await limiter.aclose()


async def test_the_release_and_a_block_give_up_on_a_hung_redis(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis hangs during the call: leaving the slot (logged) and block() (raised) both end."""
    async with _switchable(redis_url) as switch:
        limiter = nim.RedisLimiter(switch.url, prefix="late", timeout=0.3)
        async with limiter.slot("app:late", ATTACH, hold=1):
            switch.hung = True
            started = time.monotonic()
        assert time.monotonic() - started < HANG_BOUND
        assert "could not release a rate-limit slot of app:late" in caplog.text
        started = time.monotonic()
        with pytest.raises(nim.LimiterUnavailable):
            await limiter.block("app:late", ATTACH, 1)
        assert time.monotonic() - started < HANG_BOUND
        await limiter.aclose()


class _CountingRedis(aioredis.Redis):
    """A Redis client that notes the number of keys of every script it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scripts: list[int] = []
        # Called with the slots each acquire asks for.
        self.on_acquire: Callable[[int], object] | None = None
        # Acquires on their way now, and the most there ever were at once.
        self.acquiring = 0
        self.most_acquiring = 0
        self.granted = 0  # slots the acquires took

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.scripts.append(numkeys)
        if numkeys != 2:
            return await super().evalsha(sha, numkeys, *keys_and_args)
        if self.on_acquire is not None:
            self.on_acquire(int(keys_and_args[numkeys + 1]))
        self.acquiring += 1
        self.most_acquiring = max(self.most_acquiring, self.acquiring)
        try:
            answer = await super().evalsha(sha, numkeys, *keys_and_args)
        finally:
            self.acquiring -= 1
        if answer[0] == 1:
            self.granted += int(answer[1])
        return answer


async def _load_scripts(limiter: nim.RedisLimiter, redis: _CountingRedis) -> None:
    """Run every script once: a first run is two calls (NOSCRIPT, then loaded and run again)."""
    await limiter.block("app:warm-up", ATTACH, 0.001)
    await anyio.sleep(0.002)
    async with limiter.slot("app:warm-up", ATTACH, hold=1):
        pass
    redis.scripts.clear()
    redis.granted = 0


async def test_one_round_trip_asks_for_every_waiter_queued(redis_url: str) -> None:
    """Redis 10 ms away, 50 waiters at once: two acquire round trips, not 50, and a few
    release writes. One round trip per call would cap a process at a call per round trip."""
    async with _switchable(redis_url) as switch:
        switch.delay = 0.005
        redis = cast(_CountingRedis, _CountingRedis.from_url(switch.url))
        limiter = nim.RedisLimiter(redis, prefix="batched")
        fast = nim.ActionLimits((nim.Rate(10_000, 1),), block=0)
        await _load_scripts(limiter, redis)
        assert await _acquire_all(limiter, 50, fast) == [None] * 50
        acquires = redis.scripts.count(2)  # the block key and the one rate's set
        releases = redis.scripts.count(1)  # the one rate's set
        await redis.aclose()
    # The first waiter asks for itself before the others queue; the second asks for all 49.
    assert acquires == 2
    assert 1 <= releases <= 4


async def test_a_long_queue_far_from_redis_is_served_once_each_leaving_no_slot_behind(
    redis_url: str,
) -> None:
    """Redis 10 ms away, 300 waiters and 40 slots an ask: one acquire on its way at a time;
    every waiter gets in once, and Redis holds exactly 300 slots afterwards, each ending
    `per` after its release, none left provisional."""
    async with _switchable(redis_url) as switch:
        switch.delay = 0.005
        redis = cast(_CountingRedis, _CountingRedis.from_url(switch.url))
        limiter = nim.RedisLimiter(redis, prefix="long")
        # 40 slots an ask at 10 ms round trips: 1000 calls/s over 4 round trips.
        budget = nim.ActionLimits((nim.Rate(1000, 1),), block=0)
        await _load_scripts(limiter, redis)
        entered = 0

        async def call() -> None:
            nonlocal entered
            async with limiter.slot("app:k", budget, hold=1000):
                entered += 1

        with anyio.fail_after(HANG_BOUND):
            async with anyio.create_task_group() as group:
                for _ in range(300):
                    group.start_soon(call)
        ends = await _slot_ends(redis, "long:app:k:1000/1000000")
        most_acquiring = redis.most_acquiring
        granted = redis.granted
        await redis.aclose()
    assert entered == 300
    assert most_acquiring == 1
    assert granted == len(ends) == 300
    assert all(end / 1_000_000 < time.time() + 1 + CLOCKS for end in ends)


async def test_slots_given_back_during_a_write_all_reach_redis(redis_url: str) -> None:
    """Redis 10 ms away, 40 calls given back at once while one write is on its way: each
    slot ends `per` after its answer in Redis, not at its provisional start + hold + per."""
    async with _switchable(redis_url) as switch:
        switch.delay = 0.005
        limiter = nim.RedisLimiter(switch.url, prefix="together")
        budget = nim.ActionLimits((nim.Rate(100, 1),), block=0)
        go = anyio.Event()

        async def call() -> None:
            async with limiter.slot("app:t", budget, hold=1000):
                await go.wait()

        with anyio.fail_after(HANG_BOUND):
            async with anyio.create_task_group() as group:
                for _ in range(40):
                    group.start_soon(call)
                await _until_slots(redis_url, "together:app:t:100/1000000", 40)
                go.set()
        await limiter.aclose()
    redis = aioredis.Redis.from_url(redis_url)
    ends = await _slot_ends(redis, "together:app:t:100/1000000")
    await redis.aclose()
    assert len(ends) == 40
    assert all(end / 1_000_000 < time.time() + 1 + CLOCKS for end in ends)


async def _until_slots(redis_url: str, key: str, count: int) -> None:
    """Wait until Redis holds ``count`` slots under ``key``."""
    redis = aioredis.Redis.from_url(redis_url)
    try:
        while await redis.zcard(key) < count:  # noqa: ASYNC110 - Redis cannot wake us
            await anyio.sleep(0.01)
    finally:
        await redis.aclose()


async def _slot_ends(redis: aioredis.Redis, key: str) -> list[float]:
    """The end of every slot under ``key``, in µs on Redis's clock."""
    return [float(end) for _, end in await redis.zrange(key, 0, -1, withscores=True)]


async def test_a_waiter_cancelled_while_asking_hands_the_asking_on(redis_url: str) -> None:
    """The waiter polling Redis for the queue gives up; the one behind it takes over and gets in."""
    limiter = nim.RedisLimiter(redis_url, prefix="handover")
    one = nim.ActionLimits((nim.Rate(1, 0.3),), block=0)
    outcomes: list[str] = []

    async def impatient() -> None:
        with anyio.move_on_after(0.05):
            async with limiter.slot("app:h", one, hold=1):
                outcomes.append("impatient got in")
        outcomes.append("impatient gave up")

    async def patient() -> None:
        async with limiter.slot("app:h", one, hold=1):
            outcomes.append("patient got in")

    async with limiter.slot("app:h", one, hold=1):
        pass  # the budget is spent for 0.3 s
    with anyio.fail_after(HANG_BOUND):
        async with anyio.create_task_group() as group:
            group.start_soon(impatient)
            await anyio.sleep(0.01)  # the impatient one is asking when the patient one queues
            group.start_soon(patient)
    assert outcomes == ["impatient gave up", "patient got in"]
    await limiter.aclose()


async def test_slots_granted_to_waiters_cancelled_meanwhile_are_given_back(redis_url: str) -> None:
    """A waiter cancelled while the round trip asking for it is under way: its slot, granted
    anyway, is written back as answered now, not left to its provisional end. (When that
    round trip meets the block's last moments and is refused, the first waiter asks again
    for itself alone; either way every slot taken ends `per` after it was given back.)"""
    late = anyio.CancelScope()
    ran: list[str] = []
    budget = nim.ActionLimits((nim.Rate(100, 1),), block=0)

    def on_acquire(wanted: int) -> None:
        # The first waiter asks for itself during the block, and for both at
        # its end: the second leaves while that request is out.
        if wanted == 2:
            late.cancel()

    async with _switchable(redis_url) as switch:
        switch.delay = 0.005  # far enough that one round trip asks for both waiters
        redis = cast(_CountingRedis, _CountingRedis.from_url(switch.url))
        limiter = nim.RedisLimiter(redis, prefix="unused")

        async def first() -> None:
            async with limiter.slot("app:u", budget, hold=1000):
                ran.append("first")

        async def second() -> None:
            with late:
                async with limiter.slot("app:u", budget, hold=1000):
                    ran.append("second")

        await _load_scripts(limiter, redis)
        redis.on_acquire = on_acquire
        await limiter.block("app:u", budget, 0.3)
        with anyio.fail_after(HANG_BOUND):
            async with anyio.create_task_group() as group:
                group.start_soon(first)
                group.start_soon(second)
        ends = await _slot_ends(redis, "unused:app:u:100/1000000")
        granted = redis.granted
        await redis.aclose()
    assert ran == ["first"]
    assert granted in (1, 2)
    assert len(ends) == granted
    # Each ends `per` after its release, an unused one too: not at start + hold + per.
    assert all(end / 1_000_000 < time.time() + 1 + CLOCKS for end in ends)


# Bounded waits: Redis tells how far the next slot is, and a call bounded more
# tightly fails at once. PATIENCE is far below the max_wait of these calls, so a
# call that waited its max_wait out would fail the test.
PATIENCE = 5.0
SHORT_OF_THE_SLOT = 30.0
ONE_A_MINUTE = nim.RateLimits().with_action("sendAttachMsg", nim.Rate(1, 60))


async def test_a_far_slot_in_redis_fails_at_once_with_its_distance(redis_url: str) -> None:
    """One call a minute, answered just now: the next fails at once, retry_after the minute."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limiter = nim.RedisLimiter(redis_url, prefix="far")
    async with make_client(
        emulator, rate_limits=ONE_A_MINUTE, limiter=limiter, max_wait=SHORT_OF_THE_SLOT
    ) as client:
        await client.send_attach_msg("alice", "bob", "first")
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
            await client.send_attach_msg("alice", "bob", "second")
    await limiter.aclose()
    assert 60 - PATIENCE < caught.value.retry_after <= 60 + CLOCKS
    assert len(emulator.calls) == 1


async def test_a_slot_in_flight_in_redis_is_at_least_per_away(redis_url: str) -> None:
    """The slot's holder has no answer yet (its provisional end is start + hold + per): the
    script answers per, the least the wait can be."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limiter = nim.RedisLimiter(redis_url, prefix="inflight")
    limits = ONE_A_MINUTE.for_action("msg/sendAttachMsg")
    async with (
        make_client(
            emulator, rate_limits=ONE_A_MINUTE, limiter=limiter, max_wait=SHORT_OF_THE_SLOT
        ) as client,
        limiter.slot(f"{APP_KEY}:msg/sendAttachMsg", limits, hold=600),
    ):
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
            await client.send_attach_msg("alice", "bob", "x")
    await limiter.aclose()
    assert caught.value.retry_after == 60
    assert emulator.calls == []


async def test_a_block_in_redis_fails_a_bounded_call_at_once(redis_url: str) -> None:
    """A block of an hour recorded by another process: retry_after is the hour."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limiter = nim.RedisLimiter(redis_url, prefix="blocked")
    other = nim.RedisLimiter(redis_url, prefix="blocked")
    limits = ONE_A_MINUTE.for_action("msg/sendAttachMsg")
    await other.block(f"{APP_KEY}:msg/sendAttachMsg", limits, 3600)
    async with make_client(emulator, rate_limits=ONE_A_MINUTE, limiter=limiter) as client:
        with anyio.fail_after(PATIENCE), pytest.raises(nim.SlotTimeout) as caught:
            await client.send_attach_msg("alice", "bob", "x")
    await limiter.aclose()
    await other.aclose()
    assert 3600 - PATIENCE < caught.value.retry_after <= 3600 + CLOCKS
    assert emulator.calls == []


async def test_queued_waiters_beyond_their_bound_fail_together_at_once(redis_url: str) -> None:
    """Ten calls queued on a spent minute: every one fails at once, not one after another;
    an unbounded one queued among them keeps waiting."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limiter = nim.RedisLimiter(redis_url, prefix="queued")
    outcomes: list[str] = []

    async def call(client: nim.NimClient, number: int) -> None:
        try:
            await client.send_attach_msg("alice", f"user{number}", "x")
        except nim.SlotTimeout as error:
            outcomes.append(f"SlotTimeout {error.retry_after > 60 - PATIENCE}")

    async with make_client(
        emulator, rate_limits=ONE_A_MINUTE, limiter=limiter, max_wait=SHORT_OF_THE_SLOT
    ) as client:
        await client.send_attach_msg("alice", "bob", "first")
        patient = client.with_options(max_wait=None)
        with anyio.fail_after(PATIENCE):
            async with anyio.create_task_group() as group:
                group.start_soon(call, patient, 100)
                for number in range(10):
                    group.start_soon(call, client, number)
                while len(outcomes) < 10:  # noqa: ASYNC110 - counting outcomes
                    await anyio.sleep(0.01)
                await anyio.sleep(0.1)
                group.cancel_scope.cancel()  # the patient one still waits
    await limiter.aclose()
    assert outcomes == ["SlotTimeout True"] * 10
    assert len(emulator.calls) == 1


async def test_a_near_slot_in_redis_is_waited_for(redis_url: str) -> None:
    """One call per 0.3 s and max_wait 5 s: the second call waits for the slot and goes."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    limiter = nim.RedisLimiter(redis_url, prefix="near")
    limits = nim.RateLimits().with_action("sendAttachMsg", nim.Rate(1, 0.3))
    async with make_client(emulator, rate_limits=limits, limiter=limiter, max_wait=5) as client:
        for number in range(2):
            await client.send_attach_msg("alice", f"user{number}", "x")
    await limiter.aclose()
    assert [call.code for call in emulator.calls] == [200, 200]
    assert emulator.calls[1].at - emulator.calls[0].at >= 0.3 - CLOCKS


async def test_slots_taken_ahead_far_from_redis_never_overlap_more_than_calls(
    redis_url: str,
) -> None:
    """Redis 10 ms away, three limiters (as three processes), 5 per 0.2 s, 40 calls: at
    no call's start do five others hold their slots (from their start until per after
    their answer), though slots are taken before they free and their waiters sleep until then."""
    per = 0.2
    budget = nim.ActionLimits((nim.Rate(5, per),), block=0)
    held: list[tuple[float, float]] = []
    async with _switchable(redis_url) as switch:
        switch.delay = 0.005
        limiters = [nim.RedisLimiter(switch.url, prefix="ahead") for _ in range(3)]

        async def call(limiter: nim.RedisLimiter) -> None:
            async with limiter.slot("app:a", budget, hold=5):
                started = time.monotonic()
                await anyio.sleep(0.01)
                held.append((started, time.monotonic()))

        with anyio.fail_after(HANG_BOUND * 5):
            async with anyio.create_task_group() as group:
                for number in range(40):
                    group.start_soon(call, limiters[number % 3])
        for limiter in limiters:
            await limiter.aclose()
    assert len(held) == 40
    for start, _ in held:
        others = [other for other in held if other[0] < start and start < other[1] + per - CLOCKS]
        assert len(others) < 5


async def test_a_slot_taken_ahead_and_given_up_goes_back_to_the_slot_it_replaced(
    redis_url: str,
) -> None:
    """One call per second, Redis 50 ms away: a waiter given the slot ahead of its end, and
    cancelled while it sleeps until then, leaves Redis as it found it, the one slot ending
    when it did; a waiter after it gets that slot."""
    budget = nim.ActionLimits((nim.Rate(1, 1.0),), block=0)
    key = "back:app:b:1/1000000"
    async with _switchable(redis_url) as switch:
        switch.delay = 0.025
        limiter = nim.RedisLimiter(switch.url, prefix="back")
        async with limiter.slot("app:b", budget, hold=5):
            pass
        observer = aioredis.Redis.from_url(redis_url)
        (end,) = await _slot_ends(observer, key)
        entered: list[str] = []

        async def impatient(scope: anyio.CancelScope) -> None:
            with scope:
                async with limiter.slot("app:b", budget, hold=5):
                    entered.append("impatient")

        scope = anyio.CancelScope()
        with anyio.fail_after(HANG_BOUND):
            async with anyio.create_task_group() as group:
                group.start_soon(impatient, scope)
                # Taken ahead: the one entry now ends at the old end + hold + per.
                while (await _slot_ends(observer, key))[0] == end:  # noqa: ASYNC110
                    await anyio.sleep(0.001)
                scope.cancel()
        assert await _slot_ends(observer, key) == [end]
        with anyio.fail_after(HANG_BOUND):
            async with limiter.slot("app:b", budget, hold=5):
                entered.append("patient")
                assert time.time() >= end / 1_000_000 - CLOCKS
        await observer.aclose()
        await limiter.aclose()
    assert entered == ["patient"]
