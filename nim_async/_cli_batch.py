"""``nim-async batch``: send to many accids read from a file, with a journal, a
progress bar, an estimate, reconciliation on resume, a JSON summary, and a
gentle stop on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import anyio
import anyio.abc
import attrs

from ._cli_client import _FAILED, _MAYBE_SENT, _USAGE, _client, _Exit, add_limiter_options
from ._cli_input import Recipients, check_outputs, count, write_whole
from ._cli_progress import ProgressBar, estimate_line
from ._client import NimClient
from ._errors import JournalUnavailable, NimError
from ._journal import ChunkRecord
from ._journal_sqlite import SqliteJournal
from ._models import Text
from ._results import BatchJob, BatchResult, Progress

__all__ = ["DEFAULT_GRACE", "add_batch_command"]

# Recipients read from a file at once.
_READ_BLOCK = 500
# How often a job waiting on a quiet stream looks whether it was stopped.
_STOP_CHECK = 0.1
# Seconds a first SIGINT or SIGTERM waits for the answers in flight: a batch
# call is answered in well under a second, and systemd and Kubernetes wait
# 30 s before they kill.
DEFAULT_GRACE = 10.0


class _Stopped(NimError):
    """Why the command stopped its job: a signal, or a line of the input it cannot read.

    Recorded in the failed chunks of recipients that were read but not sent
    (surely unsent, as every non-network error is).
    """


class _Signals:
    """SIGINT and SIGTERM during a batch: the first stops the job gently, the second at once.

    The first signal stops the job (no new chunk; chunks waiting for a slot
    give up, unsent) and lets the calls in flight be answered for at most
    ``grace`` seconds, after which `scope` is cancelled; the second cancels it
    at once. Either way the job's record stays whole and the command goes on
    to its summary and its files.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.received: signal.Signals | None = None
        self.scope = anyio.CancelScope()
        self.job: BatchJob | None = None

    async def watch(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Handle the signals until cancelled (started before anything is sent)."""
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for number in signals:
                self.receive(signal.Signals(number))

    def receive(self, received: signal.Signals) -> None:
        """Act on one signal."""
        if self.received is not None:
            _say(f"{received.name} again: stopping now; the calls in flight may have been sent")
            self.scope.cancel()
            return
        self.received = received
        _say(
            f"{received.name}: stopping: no new calls; waiting up to {self.grace:g} s for "
            f"the answers in flight ({received.name} again stops at once)"
        )
        self.scope.deadline = min(self.scope.deadline, anyio.current_time() + self.grace)
        if self.job is not None:
            self.job.stop(self.reason())

    def reason(self) -> _Stopped:
        """The error recorded for what this signal left unsent."""
        assert self.received is not None
        return _Stopped(f"the job was interrupted by {self.received.name} before this was sent")

    @property
    def status(self) -> int | None:
        """128 + the signal's number (130, 143), as shells report a signal; None if none came."""
        return None if self.received is None else 128 + self.received.value


def _say(line: str) -> None:
    print(f"nim-async: {line}", file=sys.stderr, flush=True)


# --- the journal and the run -------------------------------------------------


class _CountingJournal:
    """An SQLite journal that remembers how many chunks the earlier runs recorded.

    A journal file that cannot be opened is the user's (status 2), as any
    other input file; one that fails later, mid-job, stops the job as usual.
    """

    __slots__ = ("_inner", "recorded")

    def __init__(self, path: str) -> None:
        self._inner = SqliteJournal(path)
        self.recorded: int | None = None

    async def open(self, fingerprint: str) -> dict[int, ChunkRecord]:
        """Open the journal; see `nim_async.Journal.open`."""
        try:
            records = await self._inner.open(fingerprint)
        except JournalUnavailable as error:
            raise _Exit(str(error)) from None
        self.recorded = len(records)
        return records

    async def write(self, index: int, record: ChunkRecord) -> None:
        """Record a chunk; see `nim_async.Journal.write`."""
        await self._inner.write(index, record)

    async def aclose(self) -> None:
        """Close the journal."""
        await self._inner.aclose()


@attrs.define
class _BatchRun:
    """What one ``nim-async batch`` knows besides the library's result."""

    client: NimClient
    method: str
    count: int | None
    bar: ProgressBar
    signals: _Signals
    journal: _CountingJournal | None = None
    job: BatchJob | None = None
    recipients: Recipients | None = None
    leftover: collections.deque[str] = attrs.Factory(collections.deque)
    started: bool = False

    @property
    def recorded(self) -> int:
        """Chunks the journal held when this run started (0 without a journal)."""
        return 0 if self.journal is None else self.journal.recorded or 0

    def on_progress(self, progress: Progress) -> None:
        # The library reports before its first call, after the journal was
        # opened and its chunks replayed: a journal of another job is then one
        # line, with no estimate, and a resumed job's estimate is for what is left.
        if not self.started:
            self.started = True
            estimate = None
            if self.count is not None:
                left = max(self.count - progress.done, 0)
                estimate = self.client.estimate_batch(self.method, left)
            _say(estimate_line(estimate, progress, self.count))
        self.bar(progress)

    async def accids(self, job: BatchJob) -> AsyncIterator[str]:
        """The recipients, read off the event loop when they come from a stream: a
        quiet writer must not hold up the answers in flight, the bar or a signal.

        Recipients read and not yet taken wait in `leftover` (part of the unread
        rest if the job stops). A stopped job takes no more; a line that cannot
        be read stops the job.
        """
        recipients = self.recipients
        assert recipients is not None
        stopped = anyio.Event()
        job.on_stop(stopped.set)
        if recipients.is_stream:
            async for accid in self._from_thread(recipients, stopped):
                yield accid
        else:
            source = iter(recipients)
            while not stopped.is_set():
                self.leftover.extend(itertools.islice(source, _READ_BLOCK))
                if not self.leftover:
                    break
                while self.leftover:
                    yield self.leftover.popleft()
        if recipients.bad is not None:
            job.stop(_Stopped(f"the job stopped at a line it cannot read: {recipients.bad}"))

    async def _from_thread(
        self, recipients: Recipients, stopped: anyio.Event
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        wake = [anyio.Event()]
        finished = threading.Event()

        def poke() -> None:
            wake[0].set()

        def pump() -> None:
            # A daemon thread: a writer that never closes the pipe must not keep
            # the process alive once the job is over.
            try:
                for accid in recipients:
                    self.leftover.append(accid)
                    if len(self.leftover) == 1:
                        loop.call_soon_threadsafe(poke)
                    if stopped.is_set():
                        return
            finally:
                finished.set()
                with contextlib.suppress(RuntimeError):  # the loop is gone
                    loop.call_soon_threadsafe(poke)

        reader = threading.Thread(target=pump, name="nim-async input", daemon=True)
        reader.start()
        try:
            async for accid in self._taken(stopped, wake, finished):
                yield accid
        finally:
            if reader.is_alive():
                # Blocked in a read: closing the stream would wait for that read.
                recipients.abandon()

    async def _taken(
        self, stopped: anyio.Event, wake: list[anyio.Event], finished: threading.Event
    ) -> AsyncIterator[str]:
        while not stopped.is_set():
            while self.leftover and not stopped.is_set():
                yield self.leftover.popleft()
            if finished.is_set() and not self.leftover:
                return
            wake[0] = anyio.Event()
            if self.leftover or finished.is_set():
                continue
            with anyio.move_on_after(_STOP_CHECK):
                await wake[0].wait()


async def _send_pass(
    args: argparse.Namespace, inputs: contextlib.ExitStack, run: _BatchRun
) -> BatchResult:
    """Read the input from its start and run the job on it (a resumed one sends only what
    its journal does not record as done)."""
    run.leftover.clear()
    run.recipients = inputs.enter_context(
        Recipients(args.to, args.column, keep_duplicates=args.keep_duplicates)
    )
    run.journal = None if args.journal is None else _CountingJournal(args.journal)
    run.started = False
    job = run.job = run.signals.job = BatchJob(run.journal, resend_in_flight=args.resend_in_flight)
    if run.signals.received is not None:
        job.stop(run.signals.reason())
    # The library knows the total of a list only; ours is counted.
    job.total = run.count
    send = getattr(run.client, run.method)
    content = args.content if args.attach else Text(args.content)
    result: BatchResult = await send(
        args.sender, run.accids(job), content, on_progress=run.on_progress, job=job
    )
    return result


def _surely_unsent(result: BatchResult) -> int:
    """Chunks that failed without being sent."""
    return sum(not chunk.may_have_been_sent for chunk in result.failed)


async def _settle_and_resend(
    args: argparse.Namespace, inputs: contextlib.ExitStack, run: _BatchRun, result: BatchResult
) -> BatchResult:
    """Settle the chunks that may have been sent with the service's history, and send
    again, in a second pass over the file, those it never got."""
    maybe = sum(chunk.may_have_been_sent for chunk in result.failed)
    if not args.reconcile or args.attach or not maybe or run.job is None:
        return result
    settled = await run.client.reconcile(run.job)
    unsent = _surely_unsent(settled) - _surely_unsent(result)
    left = sum(chunk.may_have_been_sent for chunk in settled.failed)
    _say(
        f"settled {maybe - left} of {maybe} chunks that may have been sent with the "
        f"service's history: {unsent} were not sent"
    )
    # A file (counted) can be read again from its start; stdin and pipes cannot.
    if unsent and args.journal is not None and run.count is not None:
        # The journal now records them as surely unsent: one more pass sends them.
        return await _send_pass(args, inputs, run)
    return settled


async def _batch(args: argparse.Namespace) -> None:
    if args.resend_in_flight and args.journal is None:
        raise _Exit("--resend-in-flight needs --journal")
    check_outputs(
        {"--failed-to": args.failed_to, "--maybe-sent-to": args.maybe_sent_to},
        {"--to": args.to, "--journal": args.journal, "--limiter-file": args.limiter_file},
    )
    total = count(args.to, args.column, keep_duplicates=args.keep_duplicates)
    method = "send_batch_attach_msg" if args.attach else "send_batch_msg"
    signals = _Signals(args.grace)
    async with anyio.create_task_group() as watching:
        await watching.start(signals.watch)
        try:
            with contextlib.ExitStack() as inputs, ProgressBar() as bar:
                async with _client(args) as client:
                    run = _BatchRun(client, method, total, bar, signals)
                    result = None
                    with signals.scope:
                        result = await _send_pass(args, inputs, run)
                        bad = run.recipients is not None and run.recipients.bad is not None
                        stopped = signals.received is not None or bad
                        if not stopped:
                            result = await _settle_and_resend(args, inputs, run, result)
                    if result is None or signals.scope.cancelled_caught:
                        # Stopped at once: the job's record holds every chunk read so far.
                        assert run.job is not None
                        result = run.job.result()
                bar.close()
                _report(result, run, args)
        finally:
            watching.cancel_scope.cancel()


def add_batch_command(commands: Any, *, epilog: str) -> None:
    """Add the ``batch`` subcommand to ``commands`` (argparse's subparsers)."""
    batch = commands.add_parser(
        "batch",
        help="send a text (or, with --attach, a notification) to many accids",
        description=(
            "Send to many accids, read lazily from a file. Prints the estimate and, on a\n"
            "terminal, a progress bar on stderr; then a JSON summary on stdout."
        ),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("sender")
    batch.add_argument("content", help="the text, or the notification with --attach")
    batch.add_argument(
        "--to", default="-", metavar="FILE", help="a file of accids, one per line (- = stdin)"
    )
    batch.add_argument(
        "--column", metavar="NAME", help="FILE is CSV with a header row: read this column"
    )
    batch.add_argument("--attach", action="store_true", help="send a system notification")
    batch.add_argument(
        "--journal",
        metavar="FILE",
        help="record the job in this SQLite file; the same command again resumes it "
        "and never resends what it records as done",
    )
    batch.add_argument(
        "--resend-in-flight",
        action="store_true",
        help="with --journal: resend the chunks that were in flight when the last run "
        "stopped (they may arrive twice)",
    )
    batch.add_argument(
        "--reconcile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="settle the chunks that may have been sent (in flight at a crash, timed out) "
        "by asking the service's message history, and send those it never got "
        "(text messages only: notifications are not kept in history)",
    )
    batch.add_argument(
        "--failed-to",
        metavar="FILE",
        help="write the accids that surely were not sent (failed or unread)",
    )
    batch.add_argument(
        "--maybe-sent-to",
        metavar="FILE",
        help="write the accids of the chunks that may have been sent and could not be settled",
    )
    batch.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="recipients per batch call (default 500; a journal records the size, so a "
        "resume needs the same)",
    )
    batch.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="seconds for each phase of a request (default 10); four of these make a "
        "request's deadline, after which a chunk missing from the history counts as unsent",
    )
    batch.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="send to an accid as often as it appears (by default each accid is sent to "
        "once: the accids seen are kept in memory, about 100 bytes each)",
    )
    batch.add_argument(
        "--grace",
        type=_seconds,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help="after a first SIGINT or SIGTERM, how long to wait for the answers of the calls "
        f"in flight before stopping (default {DEFAULT_GRACE:g}); a second signal stops at once",
    )
    add_limiter_options(batch)
    batch.set_defaults(run=_batch)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more; got {text!r}")
    return value


# --- the summary, the files and the exit status ------------------------------


def _summary(
    result: BatchResult, unsent: int, unread: int | None, run: _BatchRun
) -> dict[str, Any]:
    stopped = None
    if run.signals.received is not None:
        stopped = run.signals.received.name
    elif run.recipients is not None and run.recipients.bad is not None:
        stopped = "unreadable input"
    elif result.stopped is not None:
        stopped = type(result.stopped).__name__
    return {
        "accepted": result.accepted,
        "unregistered": len(result.unregister),
        "failed_chunks": len(result.failed),
        "surely_unsent": unsent,
        "maybe_sent": result.failed_count - unsent,
        "unread": unread,
        "duplicates": 0 if run.recipients is None else run.recipients.duplicates,
        "calls": result.calls,
        "stopped": stopped,
        "resumed_chunks": run.recorded,
    }


def _write(path: str | None, accids: Iterable[str]) -> tuple[int, OSError | None]:
    """Write ``accids`` to ``path`` whole (if a path is given); return how many and any error.

    The accids are always counted to their end, even when the file cannot be written.
    """
    accids = iter(accids)
    if path is None:
        return sum(1 for _ in accids), None
    counted = _Counted(accids)
    try:
        return write_whole(path, counted), None
    except OSError as error:
        return counted.seen + sum(1 for _ in accids), error


class _Counted:
    """An iterator that counts what it gave."""

    def __init__(self, inner: Iterator[str]) -> None:
        self._inner = inner
        self.seen = 0

    def __iter__(self) -> Iterator[str]:
        for item in self._inner:
            self.seen += 1
            yield item


def _report(result: BatchResult, run: _BatchRun, args: argparse.Namespace) -> None:
    """Print the summary line, write ``--failed-to`` and ``--maybe-sent-to``, and end with
    the exit status: 130 or 143 after SIGINT or SIGTERM; 2 after a line that cannot be
    read; 1 when a recipient failed; 3 when the only failures may have been sent; else 0.

    A stopped job leaves the rest of the input unread: it is surely unsent too,
    so it is counted as ``unread`` and written to ``--failed-to`` after the
    failed chunks' recipients. After a signal, standard input is not read to
    its end (it may never end): its ``unread`` is null.
    """
    unsent = [a for chunk in result.failed if not chunk.may_have_been_sent for a in chunk.accids]
    maybe = (a for chunk in result.failed if chunk.may_have_been_sent for a in chunk.accids)
    rest: Iterable[str] = run.leftover
    if run.recipients is not None:
        rest = itertools.chain(run.leftover, run.recipients)
    bad = run.recipients is not None and run.recipients.bad is not None
    # The rest of a stream after a signal may never come, and after a bad line
    # it cannot be read: unknown, not read.
    stopped = run.signals.received is not None or result.stopped is not None
    unknown_rest = bad or (stopped and run.count is None)
    if unknown_rest:
        rest = tuple(run.leftover)  # a stream's reader may still be adding to it
    written, problem = _write(args.failed_to, itertools.chain(unsent, rest))
    _, maybe_problem = _write(args.maybe_sent_to, maybe)
    unread = None if unknown_rest else written - len(unsent)
    # The summary before any error: a file that cannot be written must not
    # hide what a long job did.
    print(json.dumps(_summary(result, len(unsent), unread, run)), flush=True)
    for flag, path, error in (
        ("--failed-to", args.failed_to, problem),
        ("--maybe-sent-to", args.maybe_sent_to, maybe_problem),
    ):
        if error is not None:
            raise _Exit(f"cannot write {flag} {path}: {error.strerror or error}")
    maybe_count = result.failed_count - len(unsent)
    if run.signals.status is not None:
        raise _Exit(
            f"stopped by {run.signals.received and run.signals.received.name}: "
            f"{len(unsent) + (unread or 0):,} recipients surely unsent"
            f"{' (written to ' + args.failed_to + ')' if args.failed_to else ''}, "
            f"{maybe_count:,} may have been sent; the same command with the same "
            "--journal resumes the job",
            run.signals.status,
        )
    if run.recipients is not None and run.recipients.bad is not None:
        raise _Exit(f"cannot read {run.recipients.bad}", _USAGE)
    if result.failed:
        first = result.failed[0].error
        if not unsent and not unread:
            raise _Exit(
                f"{len(result.failed)} chunks ({result.failed_count} recipients) may have been "
                "sent and could not be settled with the service; nothing else failed. "
                f"First: {type(first).__name__}: {first}",
                _MAYBE_SENT,
            )
        raise _Exit(
            f"{len(result.failed)} chunks failed ({result.failed_count} recipients); "
            f"first error: {type(first).__name__}: {first}",
            _FAILED,
        )
