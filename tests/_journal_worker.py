"""One run of a journalled bulk job, to be killed: the SIGKILL resume test's worker.

Usage: python -m tests._journal_worker BASE_URL JOURNAL PREFIX COUNT
JOURNAL is ``sqlite:PATH`` or ``redis:URL#KEY``. Prints ``ready`` once imported
and connected, then sends COUNT recipients named PREFIX-<n> in chunks of
BATCH_SIZE, MAX_CONCURRENCY at a time, and prints ``done``.
"""

from __future__ import annotations

import sys

import anyio

import nim_async as nim

BATCH_SIZE = 20
MAX_CONCURRENCY = 4


def journal_of(spec: str) -> nim.Journal:
    """The journal a spec names: ``sqlite:PATH`` or ``redis:URL#KEY``."""
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        return nim.SqliteJournal(where)
    url, _, key = where.partition("#")
    return nim.RedisJournal(url, key)


def recipients(prefix: str, count: int) -> list[str]:
    """The job's recipients, the same in every run."""
    return [f"{prefix}-{number}" for number in range(count)]


async def main(base_url: str, journal: str, prefix: str, count: int) -> None:
    async with nim.NimClient(
        "test-app-key",
        "test-app-secret-do-not-leak",
        base_url=base_url,
        rate_limits=None,
        batch_size=BATCH_SIZE,
    ) as client:
        print("ready", flush=True)
        await client.send_batch_attach_msg(
            "alice",
            recipients(prefix, count),
            "x",
            max_concurrency=MAX_CONCURRENCY,
            job=nim.BatchJob(journal_of(journal)),
        )
    print("done", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
