"""One worker process of the shared limiter-file tests: sends through ``LocalLimiter(path=...)``.

Usage: python -m tests._limiter_file_worker BASE_URL PATH MODE COUNT SCALE NAME

The rate limits are ``RateLimits.default().scaled(SCALE)``. The worker prints
``ready`` once its client exists (the file is opened at the first call), and
starts when a line arrives on stdin:

- ``attach``: COUNT sendAttachMsg calls at once (to ``NAME-0``, ``NAME-1``, ...),
  then prints ``sent <succeeded>`` and waits for another line (so that it can be
  killed while it is alive, holding the file open);
- ``nos``: one ``clean_nos_files`` call, then prints ``ok``, or
  ``SlotTimeout <retry_after> <seconds the call took>``.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import anyio
import anyio.to_thread

import nim_async as nim

APP_KEY = "test-app-key"
APP_SECRET = "test-app-secret-do-not-leak"


def _past_nos_range() -> tuple[dt.datetime, dt.datetime]:
    """Two days ending an hour before today in China time, as job/nos/del requires."""
    china = dt.timezone(dt.timedelta(hours=8))
    midnight = dt.datetime.now(china).replace(hour=0, minute=0, second=0, microsecond=0)
    end = midnight - dt.timedelta(hours=1)
    return end - dt.timedelta(days=2), end


async def _attach(client: nim.NimClient, count: int, name: str) -> None:
    succeeded = 0

    async def send(number: int) -> None:
        nonlocal succeeded
        await client.send_attach_msg("alice", f"{name}-{number}", "x")
        succeeded += 1

    async with anyio.create_task_group() as group:
        for number in range(count):
            group.start_soon(send, number)
    print(f"sent {succeeded}", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.readline)


async def _nos(client: nim.NimClient) -> None:
    start, end = _past_nos_range()
    started = time.monotonic()
    try:
        await client.clean_nos_files(start, end)
    except nim.SlotTimeout as error:
        print(f"SlotTimeout {error.retry_after} {time.monotonic() - started}", flush=True)
    else:
        print("ok", flush=True)


async def main(base_url: str, path: str, mode: str, count: int, scale: float, name: str) -> None:
    async with nim.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url=base_url,
        rate_limits=nim.RateLimits.default().scaled(scale),
        limiter=nim.LocalLimiter(path=path),
        max_connections=200,
    ) as client:
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        if mode == "attach":
            await _attach(client, count, name)
        else:
            await _nos(client)


if __name__ == "__main__":
    base, file, how, calls, factor, worker = sys.argv[1:7]
    anyio.run(main, base, file, how, int(calls), float(factor), worker)
