"""``nim-async demo``: a burst and a killed-and-resumed bulk job against an
in-process emulator that enforces the real limits in compressed time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from ._cli_batch import _CountingJournal
from ._cli_progress import ProgressBar, estimate_line
from ._client import NimClient
from ._errors import ChunkCancelled
from ._limits import RateLimits
from ._models import Text
from ._results import BatchJob, BatchResult, Progress

# The demo's app, and the emulator command's when the environment sets none.
_DEMO_KEY = "demo-app-key"
_DEMO_SECRET = "demo-app-secret"

_DEMO_ACTION = "msg/sendBatchMsg"
_DEMO_TEXT = Text("spring sale: 20% off today")
# The share of the bulk job done when the demo kills it.
_DEMO_KILL_AT = 0.4
# Seconds per request phase: a chunk in flight at the kill and missing from the
# history is settled as unsent once its deadline (four phases) has passed.
_DEMO_TIMEOUT = 0.25


async def _demo(args: argparse.Namespace) -> None:
    """Run a burst and a bulk job against an in-process emulator that enforces the
    real limits in compressed time and fails some calls; kill the bulk job part
    way, resume it from its journal, settle what the kill left uncertain with the
    service's message history, and report what happened, from the client's side."""
    from .testing import NimEmulator

    limits = RateLimits.default().scaled(args.scale)
    registered = [f"user{number}" for number in range(args.recipients * 9 // 10)]
    emulator = NimEmulator(
        _DEMO_KEY,
        _DEMO_SECRET,
        rate_limits=limits,
        accounts=["demo-sender", "demo-reader", *registered],
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
        timeout=_DEMO_TIMEOUT,
    ) as client:
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for number in range(args.messages):
                group.start_soon(client.send_msg, "demo-sender", "demo-reader", Text(f"{number}"))
        print(
            f"burst: {args.messages} messages in {time.perf_counter() - started:.2f} s "
            f"(limit 100 per {limits.for_action('msg/sendMsg').rates[0].per:g} s)"
        )
        with tempfile.TemporaryDirectory() as folder:
            journal = str(Path(folder) / "job.sqlite3")
            await _demo_killed(client, args.recipients, journal)
            emulator.fail_every(_DEMO_ACTION, 0, 419)
            job = await _demo_resumed(client, args.recipients, journal)
            result = await _demo_settled(client, job)
            if result.resendable():
                # The journal now records those chunks as unsent: one more run sends them.
                result = (await _demo_resumed(client, args.recipients, journal)).result()
        stats = client.limiter_stats()
    blocked = sum(action.rate_limited for action in stats.values())
    maybe = sum(len(chunk.accids) for chunk in result.failed if chunk.may_have_been_sent)
    print(
        f"in the end: {result.accepted:,} accepted, {len(result.unregister):,} unregistered, "
        f"{maybe} may have been sent, {result.failed_count - maybe} failed, of "
        f"{args.recipients:,}; {blocked} answers 416 (blocked) in all"
    )


async def _demo_recipients(count: int) -> AsyncIterator[str]:
    for number in range(count):
        yield f"user{number}"


async def _demo_killed(client: NimClient, count: int, journal: str) -> None:
    """Run the bulk job on ``journal`` and cancel it once part of it is done: a crash."""
    estimate = client.estimate_batch("send_batch_msg", count)
    print("bulk: " + estimate_line(estimate, Progress(0, count, 0), count))
    started = time.perf_counter()
    job = BatchJob(journal)
    with anyio.CancelScope() as kill, ProgressBar() as bar:

        def crash(progress: Progress) -> None:
            bar(progress)
            if progress.done >= count * _DEMO_KILL_AT:
                kill.cancel()

        await client.send_batch_msg(
            "demo-sender", _demo_recipients(count), _DEMO_TEXT, on_progress=crash, job=job
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


async def _demo_resumed(client: NimClient, count: int, journal: str) -> BatchJob:
    """Run the same job again on the same journal; return its job."""
    started = time.perf_counter()
    record = _CountingJournal(journal)
    job = BatchJob(record)
    with ProgressBar() as bar:
        result = await client.send_batch_msg(
            "demo-sender", _demo_recipients(count), _DEMO_TEXT, on_progress=bar, job=job
        )
    maybe = [chunk for chunk in result.failed if chunk.may_have_been_sent]
    print(
        f"resumed in {time.perf_counter() - started:.2f} s from the journal's "
        f"{record.recorded} chunks: {result.accepted:,} accepted, "
        f"{len(result.unregister):,} unregistered, {len(maybe)} chunks may have been sent "
        f"({sum(len(chunk.accids) for chunk in maybe):,} recipients), "
        f"{len(result.failed) - len(maybe)} failed; {result.calls} calls"
    )
    return job


async def _demo_settled(client: NimClient, job: BatchJob) -> BatchResult:
    """Settle the chunks that may have been sent with the service's history."""
    maybe = len(job.maybe_sent())
    started = time.perf_counter()
    result = await client.reconcile(job)
    unsent = sum(not chunk.may_have_been_sent for chunk in result.failed)
    print(
        f"asked the service's history (history/querySessionMsg) about the {maybe} chunks "
        f"that may have been sent: {maybe - unsent} had arrived, {unsent} had not "
        f"({time.perf_counter() - started:.2f} s)"
    )
    return result
