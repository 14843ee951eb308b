"""``nim-async demo``: a burst and a killed-and-resumed bulk job against an
in-process emulator that enforces the real limits in compressed time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from ._cli_batch import _CountingJournal, _estimate_line, _ProgressBar
from ._client import NimClient
from ._errors import ChunkCancelled
from ._limits import RateLimits
from ._models import Text
from ._results import BatchJob, FailedChunk, Progress

# The demo's app, and the emulator command's when the environment sets none.
_DEMO_KEY = "demo-app-key"
_DEMO_SECRET = "demo-app-secret"

_DEMO_ACTION = "msg/sendBatchAttachMsg"
_DEMO_NOTICE = {"event": "sale"}
# The share of the bulk job done when the demo kills it.
_DEMO_KILL_AT = 0.4


async def _demo(args: argparse.Namespace) -> None:
    """Run a burst and a bulk job against an in-process emulator that enforces the
    real limits in compressed time and fails some calls; kill the bulk job part
    way, resume it from its journal, and report what happened."""
    from .testing import NimEmulator

    limits = RateLimits.default().scaled(args.scale)
    registered = [f"user{number}" for number in range(args.recipients * 9 // 10)]
    emulator = NimEmulator(
        _DEMO_KEY, _DEMO_SECRET, rate_limits=limits, accounts=["demo-sender", *registered]
    )
    # Every 7th batch call is refused (419, not carried out): the journal
    # records those chunks as surely unsent, and resuming sends them.
    emulator.fail_every(_DEMO_ACTION, 7, 419, desc="injected refusal")
    # A chunk takes the server a moment: the kill finds some in flight.
    emulator.set_latency(0.02, _DEMO_ACTION)
    async with NimClient(
        _DEMO_KEY,
        _DEMO_SECRET,
        base_url="http://nim.demo/nimserver/",
        transport=emulator.transport(),
        rate_limits=limits,
    ) as client:
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for number in range(args.messages):
                group.start_soon(client.send_msg, "demo-sender", f"user{number}", Text("hello"))
        print(
            f"burst: {args.messages} messages in {time.perf_counter() - started:.2f} s "
            f"(limit 100 per {limits.for_action('msg/sendMsg').rates[0].per:g} s)"
        )
        with tempfile.TemporaryDirectory() as folder:
            journal = str(Path(folder) / "job.sqlite3")
            await _demo_killed(client, args.recipients, journal)
            emulator.fail_every(_DEMO_ACTION, 0, 419)
            maybe = await _demo_resumed(client, args.recipients, journal)
        delivered = {m.to for m in emulator.messages if m.action == _DEMO_ACTION}
        # What the journal cannot know, the server's record can: a chunk in
        # flight at the kill reached the server if any of its recipients got it
        # (one of unregistered accids only is harmless to send again).
        unsent = [chunk for chunk in maybe if delivered.isdisjoint(chunk.accids)]
        if unsent:
            accids = [accid for chunk in unsent for accid in chunk.accids]
            again = await client.send_batch_attach_msg("demo-sender", accids, _DEMO_NOTICE)
            again.raise_for_failures()
        print(
            f"checked the {len(maybe)} maybe-sent chunks against the server's messages: "
            f"{len(maybe) - len(unsent)} had arrived, {len(unsent)} sent now"
        )
    codes = Counter(call.code or call.status for call in emulator.calls)
    deliveries = Counter(m.to for m in emulator.messages if m.action == _DEMO_ACTION)
    once = sum(count == 1 for count in deliveries.values())
    print(f"server answers: {dict(sorted(codes.items()))}, {codes.get(416, 0)} blocked (416)")
    print(
        f"registered recipients notified exactly once: {once:,} of {len(registered):,}; "
        f"twice or more: {sum(count > 1 for count in deliveries.values())}"
    )


async def _demo_recipients(count: int) -> AsyncIterator[str]:
    for number in range(count):
        yield f"user{number}"


async def _demo_killed(client: NimClient, count: int, journal: str) -> None:
    """Run the bulk job on ``journal`` and cancel it once part of it is done: a crash."""
    print(
        "bulk: " + _estimate_line(client.estimate_batch("send_batch_attach_msg", count), count, 0)
    )
    started = time.perf_counter()
    job = BatchJob(journal)
    with anyio.CancelScope() as kill, _ProgressBar() as bar:

        def crash(progress: Progress) -> None:
            bar(progress)
            if progress.done >= count * _DEMO_KILL_AT:
                kill.cancel()

        await client.send_batch_attach_msg(
            "demo-sender", _demo_recipients(count), _DEMO_NOTICE, on_progress=crash, job=job
        )
    result = job.result()
    cut = [chunk for chunk in result.failed if isinstance(chunk.error, ChunkCancelled)]
    in_flight = sum(chunk.may_have_been_sent for chunk in cut)
    print(
        f"killed after {time.perf_counter() - started:.2f} s: "
        f"{result.accepted + len(result.unregister):,} of {count:,} done, "
        f"{len(result.failed) - len(cut)} chunks refused (419), "
        f"{in_flight} chunks in flight (may have been sent)"
    )


async def _demo_resumed(client: NimClient, count: int, journal: str) -> list[FailedChunk]:
    """Run the same job again on the same journal; return the chunks that may have been sent."""
    started = time.perf_counter()
    record = _CountingJournal(journal)
    with _ProgressBar() as bar:
        result = await client.send_batch_attach_msg(
            "demo-sender",
            _demo_recipients(count),
            _DEMO_NOTICE,
            on_progress=bar,
            job=BatchJob(record),
        )
    maybe = [chunk for chunk in result.failed if chunk.may_have_been_sent]
    print(
        f"resumed in {time.perf_counter() - started:.2f} s from the journal's "
        f"{record.recorded} chunks: {result.accepted:,} accepted, "
        f"{len(result.unregister):,} unregistered, {len(maybe)} chunks may have been sent "
        f"({sum(len(chunk.accids) for chunk in maybe):,} recipients), "
        f"{len(result.failed) - len(maybe)} failed; {result.calls} calls"
    )
    return maybe
