"""RedisLimiter: one budget shared by every client, process and host, on Redis's clock."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

import nim_async as nim
from nim_async.testing import NimEmulator

from ._timing import Exchange, TimingTransport, budget_share
from .conftest import APP_KEY, APP_SECRET, free_port, make_client

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

LIMITS = nim.RateLimits.default().scaled(0.5)  # 100 calls per 0.5 s, block 5 s
ATTACH = LIMITS.for_action("msg/sendAttachMsg")
ROOT = Path(__file__).parent.parent


async def test_clients_with_separate_redis_limiters_share_one_budget(redis_url: str) -> None:
    """Three clients, each with its own RedisLimiter and pool: 900 calls, zero 416, no idling."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=LIMITS)
    timing = TimingTransport(emulator.transport())
    limiters = [nim.RedisLimiter(redis_url, prefix="share") for _ in range(3)]
    clients = [
        make_client(timing, rate_limits=LIMITS, limiter=limiter, retry=nim.RetryPolicy())
        for limiter in limiters
    ]
    async with anyio.create_task_group() as group:
        for number in range(900):
            group.start_soon(clients[number % 3].send_attach_msg, "alice", f"user{number}", "x")
    for client, limiter in zip(clients, limiters, strict=True):
        await client.aclose()
        await limiter.aclose()

    assert emulator.rate_limited == 0
    assert len(emulator.messages) == 900
    assert budget_share(timing.exchanges, 100, 0.5) >= 0.9


async def test_a_block_recorded_by_one_limiter_holds_every_other(redis_url: str) -> None:
    """After a 416 in one process, no other process starts that action until the block ends."""
    first = nim.RedisLimiter(redis_url, prefix="block")
    own_client = aioredis.Redis.from_url(redis_url)
    second = nim.RedisLimiter(own_client, prefix="block")
    await first.block("app:msg/sendMsg", ATTACH, 0.3)
    started = time.monotonic()
    async with second.slot("app:msg/sendMsg", ATTACH, hold=1):
        assert time.monotonic() - started >= 0.28
    await first.aclose()
    await second.aclose()
    assert await own_client.ping()  # a client passed in is not closed by the limiter
    await own_client.aclose()


async def test_a_slot_frees_per_seconds_after_its_answer(redis_url: str) -> None:
    """Budget 2 per 0.3 s: the third call starts 0.3 s after the first two answered."""
    limiter = nim.RedisLimiter(redis_url, prefix="slots")
    two = nim.ActionLimits((nim.Rate(2, 0.3),), block=0)
    for _ in range(2):
        async with limiter.slot("app:x", two, hold=5):
            pass
    answered = time.monotonic()
    async with limiter.slot("app:x", two, hold=5):
        assert time.monotonic() - answered >= 0.28
    await limiter.aclose()


async def test_every_window_is_checked_and_recorded_together(redis_url: str) -> None:
    """Broadcast's two rates: the per-day budget stops calls the per-minute one would admit."""
    limiter = nim.RedisLimiter(redis_url, prefix="two")
    limits = nim.ActionLimits((nim.Rate(10, 0.05), nim.Rate(3, 60)), block=0)
    for _ in range(3):
        async with limiter.slot("app:msg/broadcastMsg", limits, hold=1):
            pass
    with anyio.move_on_after(0.3) as scope:
        async with limiter.slot("app:msg/broadcastMsg", limits, hold=1):
            pass
    assert scope.cancelled_caught
    await limiter.aclose()


async def test_a_crashed_holder_frees_its_slot_after_hold_plus_per(redis_url: str) -> None:
    """A slot never released (a dead worker) counts until start + hold + per, then frees."""
    limiter = nim.RedisLimiter(redis_url, prefix="crash")
    one = nim.ActionLimits((nim.Rate(1, 0.1),), block=0)
    slot = limiter.slot("app:y", one, hold=0.2)
    await slot.__aenter__()  # entered and never left, as a killed process would
    started = time.monotonic()
    async with limiter.slot("app:y", one, hold=0.2):
        waited = time.monotonic() - started
    assert 0.25 <= waited < 1.0
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
    for _ in range(6):
        async with limiter.slot("app:w", ATTACH, hold=1):
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

    Zero 416, and together they use at least 90% of what the windows allow.
    """
    emulator = NimEmulator(APP_KEY, APP_SECRET, rate_limits=LIMITS)
    with emulator.serve() as base_url:
        start_at = time.time() + 3.0
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests._worker",
                    base_url,
                    redis_url,
                    "200",
                    str(start_at),
                    f"w{worker}",
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for worker in range(3)
        ]
        outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0]
    exchanges = [
        Exchange("msg/sendAttachMsg", sent, answered, code)
        for output in outputs
        for sent, answered, code in json.loads(output)
    ]
    assert len(exchanges) == 600
    assert emulator.rate_limited == 0
    assert {call.code for call in emulator.calls} == {200}
    share = budget_share(exchanges, 100, 0.5)
    print(f"three processes: {share:.1%} of the budget used")
    assert share >= 0.9


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
        assert time.monotonic() - started < 2
