"""One run of a journalled bulk job, to be killed or doubled: the worker of the journal
tests that need real processes.

Usage:
    python -m tests._journal_worker BASE_URL JOURNAL PREFIX COUNT [APP_KEY [LIMITER]]

JOURNAL is ``sqlite:PATH`` or ``redis:URL#KEY``; LIMITER is ``none`` (no client-side
limits, the default), ``memory`` (a ``LocalLimiter()`` and NetEase's default limits)
or ``file:PATH`` (a ``LocalLimiter(path=PATH)`` and the default limits).

Prints ``ready`` once imported and connected, then sends COUNT recipients named
PREFIX-<n> in chunks of BATCH_SIZE, MAX_CONCURRENCY at a time, and prints ``done``;
or, when the job raises a ``NimError`` or stops on one, prints ``error <its class name>``
and exits 3.
"""

from __future__ import annotations

import sys

import anyio

import nim_async as nim

BATCH_SIZE = 20
MAX_CONCURRENCY = 4
APP_KEY = "test-app-key"
# Short enough that a killed runner's lease lapses within a trial; the timeout long
# enough for a round trip to a local Redis on a loaded 2-core machine.
REDIS_TIMEOUT = 0.3
REDIS_LEASE = 1.0


def journal_of(spec: str) -> nim.Journal:
    """The journal a spec names: ``sqlite:PATH`` or ``redis:URL#KEY``."""
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        return nim.SqliteJournal(where)
    url, _, key = where.partition("#")
    return nim.RedisJournal(url, key, timeout=REDIS_TIMEOUT, lease=REDIS_LEASE)


def recipients(prefix: str, count: int) -> list[str]:
    """The job's recipients, the same in every run."""
    return [f"{prefix}-{number}" for number in range(count)]


def limiter_of(spec: str) -> tuple[nim.RateLimits | None, nim.LocalLimiter]:
    """The rate limits and the limiter a spec names: ``none``, ``memory`` or ``file:PATH``."""
    if spec == "none":
        return None, nim.LocalLimiter()
    if spec == "memory":
        return nim.RateLimits.default(), nim.LocalLimiter()
    return nim.RateLimits.default(), nim.LocalLimiter(path=spec.removeprefix("file:"))


async def main(
    base_url: str, journal: str, prefix: str, count: int, app_key: str, limiter: str
) -> None:
    rate_limits, local = limiter_of(limiter)
    async with nim.NimClient(
        app_key,
        "test-app-secret-do-not-leak",
        base_url=base_url,
        rate_limits=rate_limits,
        limiter=local,
        batch_size=BATCH_SIZE,
    ) as client:
        print("ready", flush=True)
        try:
            result = await client.send_batch_attach_msg(
                "alice",
                recipients(prefix, count),
                "x",
                max_concurrency=MAX_CONCURRENCY,
                job=nim.BatchJob(journal_of(journal)),
            )
        except nim.NimError as error:
            print(f"error {type(error).__name__}", flush=True)
            sys.exit(3)
        if result.stopped is not None:
            print(f"error {type(result.stopped).__name__}", flush=True)
            sys.exit(3)
    print("done", flush=True)


if __name__ == "__main__":
    key = sys.argv[5] if len(sys.argv) > 5 else APP_KEY
    limiter = sys.argv[6] if len(sys.argv) > 6 else "none"
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), key, limiter)
