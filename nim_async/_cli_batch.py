"""``nim-async batch``: send to many accids read from a file, with a journal, a
progress bar, an estimate, reconciliation on resume and a JSON summary.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from ._cli_client import _FAILED, _MAYBE_SENT, _client, _Exit
from ._client import NimClient
from ._errors import JournalUnavailable
from ._journal import ChunkRecord
from ._journal_sqlite import SqliteJournal
from ._models import Text
from ._results import BatchEstimate, BatchJob, BatchResult, Progress

if TYPE_CHECKING:
    import rich.progress


def _open_text(source: str) -> contextlib.AbstractContextManager[TextIO]:
    """Open ``source`` for reading ("-" is stdin, left open), before anything is sent.

    A file's byte order mark is dropped: spreadsheets write one before a CSV header.

    Raises:
        _Exit: It cannot be opened (status 2).
    """
    if source == "-":
        return contextlib.nullcontext(sys.stdin)
    try:
        return open(source, encoding="utf-8-sig", newline="")
    except OSError as error:
        raise _Exit(f"cannot read {source}: {error.strerror or error}") from None


# --- batch: the recipients ---------------------------------------------------


@contextlib.contextmanager
def _reading(source: str, rows: Any = None) -> Iterator[None]:
    """Turn a file that cannot be decoded or parsed into one line and status 2."""
    try:
        yield
    except UnicodeDecodeError:
        raise _Exit(f"cannot read {_name(source)}: not UTF-8 text") from None
    except csv.Error as error:
        raise _Exit(f"cannot read {_name(source)}: line {rows.line_num}: {error}") from None


def _name(source: str) -> str:
    return "stdin" if source == "-" else source


def _accids(stream: TextIO, source: str, column: str | None = None) -> Iterator[str]:
    """The accids of an open file, read lazily: one per line, or the CSV ``column``.

    Blank lines and blank cells are skipped. With ``column`` the header row is
    read and checked now, so that a wrong column stops the command before
    anything is sent; the rows are read as the job takes them.

    Raises:
        _Exit: No such column, an empty file (now); the file is not UTF-8 text
            or not CSV (as it is read); status 2.
    """
    if column is None:
        return _lines(stream, source)
    rows = csv.reader(stream)
    with _reading(source, rows):
        header = next(rows, None)
    if header is None:
        raise _Exit(f"{_name(source)} is empty: --column needs a CSV file with a header row")
    names = [name.strip() for name in header]
    if column not in names:
        shown = ", ".join(repr(name) for name in names[:10]) + (", ..." if len(names) > 10 else "")
        raise _Exit(f"{_name(source)} has no column {column!r}: its first row is {shown}")
    return _cells(rows, names.index(column), source)


def _lines(stream: TextIO, source: str) -> Iterator[str]:
    with _reading(source):
        for line in stream:
            if accid := line.strip():
                yield accid


def _cells(rows: Any, at: int, source: str) -> Iterator[str]:
    with _reading(source, rows):
        for row in rows:
            if len(row) > at and (accid := row[at].strip()):
                yield accid


def _count(source: str, column: str | None) -> int | None:
    """How many accids ``source`` holds, in a streaming pass of its own; None for
    stdin or a pipe.

    The pass also finds a file that cannot be read before anything is sent.

    Raises:
        _Exit: As `_accids` (status 2).
    """
    if source == "-" or not Path(source).is_file():
        # A pipe (`--to <(...)`) can be read once only: it is the job's.
        return None
    with _open_text(source) as stream:
        return sum(1 for _ in _accids(stream, source, column))


# --- batch: the journal, the estimate and the bar ----------------------------


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


def _duration(seconds: float) -> str:
    """``3 min 0 s``, ``42 s``, ``0.4 s``, ``2 h 5 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, whole = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {whole} s" if minutes else f"{whole} s"


def _estimate_line(estimate: BatchEstimate | None, count: int | None, recorded: int | None) -> str:
    if estimate is None or count is None:
        return "the number of recipients is unknown (stdin or a pipe), so there is no estimate"
    line = (
        f"{estimate.calls:,} calls for {count:,} recipients, "
        f"at least {_duration(estimate.seconds)} at the current budget"
    )
    if recorded:
        line += f", less the {recorded:,} chunks the journal records (resuming)"
    return line


class _ProgressBar:
    """A rich progress bar (count, bar, rate, ETA) fed by ``on_progress``.

    It draws only when its stream (stderr) is a terminal: piped or redirected,
    the command prints nothing but its summary and its errors. Use it in a
    ``with`` block, so that the bar stops before any error line is printed.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._bar: rich.progress.Progress | None = None
        self._task: rich.progress.TaskID | None = None

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, progress: Progress) -> None:
        if not self._stream.isatty():
            return
        done = f"{progress.done:,}"
        failed = progress.failed_chunks
        fields: dict[str, Any] = {
            "count": f"{done}/{progress.total:,}" if progress.total else f"{done} recipients",
            "rate": "" if progress.rate is None else f"{progress.rate:,.0f}/s",
            "eta": "" if progress.eta is None else f"eta {_duration(progress.eta)}",
            "failed": f"{failed} failed chunks" if failed else "",
        }
        if self._bar is None or self._task is None:
            self._bar = self._start()
            self._task = self._bar.add_task(
                "", total=progress.total, completed=progress.done, **fields
            )
            self._bar.start()
        else:
            self._bar.update(self._task, completed=progress.done, total=progress.total, **fields)

    def _start(self) -> rich.progress.Progress:
        from rich.console import Console
        from rich.progress import BarColumn, TaskProgressColumn, TextColumn
        from rich.progress import Progress as RichProgress

        return RichProgress(
            TextColumn("{task.fields[count]}"),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[failed]}"),
            console=Console(file=self._stream),
            # stdout is the summary's: never mix the bar into it.
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def close(self) -> None:
        """Draw the last state and leave the bar on its line, if one was drawn."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# --- batch: the command ------------------------------------------------------


def _summary(result: BatchResult, unsent: int, unread: int, run: _BatchRun) -> dict[str, Any]:
    return {
        "accepted": result.accepted,
        "unregistered": len(result.unregister),
        "failed_chunks": len(result.failed),
        "surely_unsent": unsent,
        "maybe_sent": result.failed_count - unsent,
        "unread": unread,
        "calls": result.calls,
        "stopped": None if result.stopped is None else type(result.stopped).__name__,
        "resumed_chunks": run.recorded,
    }


@attrs.define
class _BatchRun:
    """What one ``nim-async batch`` knows besides the library's result."""

    count: int | None
    estimate: BatchEstimate | None
    journal: _CountingJournal | None
    bar: _ProgressBar
    started: bool = False

    @property
    def recorded(self) -> int:
        """Chunks the journal held when this run started (0 without a journal)."""
        return 0 if self.journal is None else self.journal.recorded or 0

    def on_progress(self, progress: Progress) -> None:
        # The library reports before its first call, after the journal was
        # opened: a journal of another job is then one line, with no estimate.
        if not self.started:
            self.started = True
            print(
                f"nim-async: {_estimate_line(self.estimate, self.count, self.recorded)}",
                file=sys.stderr,
                flush=True,
            )
        self.bar(progress)


def _write_accids(path: str | None, accids: Iterator[str]) -> tuple[int, OSError | None]:
    """Write ``accids`` to ``path`` (if any), one per line; return how many and any error.

    The iterator is always read to its end, so the count is right even when
    the file cannot be written.
    """
    written = 0
    problem: OSError | None = None
    with contextlib.ExitStack() as stack:
        out = None
        if path is not None:
            try:
                out = stack.enter_context(open(path, "w", encoding="utf-8"))
            except OSError as error:
                problem = error
        for accid in accids:
            written += 1
            if out is not None and problem is None:
                try:
                    out.write(f"{accid}\n")
                except OSError as error:
                    problem = error
    return written, problem


def _report(
    result: BatchResult,
    run: _BatchRun,
    accids: Iterator[str],
    failed_to: str | None,
    maybe_sent_to: str | None,
) -> None:
    """Print the summary line, write ``failed_to`` and ``maybe_sent_to``, and exit 0 when
    every recipient was accepted or reported unregistered; 3 when the only failures
    may have been sent; else 1.

    A stopped job leaves the rest of the input unread: it is surely unsent too,
    so it is counted as ``unread`` and written to ``failed_to`` after the
    failed chunks' recipients.
    """
    unsent = [a for chunk in result.failed if not chunk.may_have_been_sent for a in chunk.accids]
    maybe = (a for chunk in result.failed if chunk.may_have_been_sent for a in chunk.accids)
    written, problem = _write_accids(failed_to, itertools.chain(unsent, accids))
    _, maybe_problem = _write_accids(maybe_sent_to, maybe)
    unread = written - len(unsent)
    # The summary before any error: a file that cannot be written must not
    # hide what a long job did.
    print(json.dumps(_summary(result, len(unsent), unread, run)), flush=True)
    for path, error in ((failed_to, problem), (maybe_sent_to, maybe_problem)):
        if error is not None:
            raise _Exit(f"cannot write {path}: {error.strerror or error}")
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


async def _send_pass(
    client: NimClient,
    args: argparse.Namespace,
    inputs: contextlib.ExitStack,
    run: _BatchRun,
) -> tuple[BatchJob, BatchResult, Iterator[str]]:
    """Read the input from its start and run the job on it (a resumed one sends only what
    its journal does not record as done); return the job, its result and the unread rest."""
    stream = inputs.enter_context(_open_text(args.to))
    accids = _accids(stream, args.to, args.column)
    run.journal = None if args.journal is None else _CountingJournal(args.journal)
    run.started = False
    job = BatchJob(run.journal, resend_in_flight=args.resend_in_flight)
    # The library knows the total of a list only; ours is counted.
    job.total = run.count
    if args.attach:
        result = await client.send_batch_attach_msg(
            args.sender, accids, args.content, on_progress=run.on_progress, job=job
        )
    else:
        result = await client.send_batch_msg(
            args.sender, accids, Text(args.content), on_progress=run.on_progress, job=job
        )
    return job, result, accids


def _surely_unsent(result: BatchResult) -> int:
    """Chunks that failed without being sent."""
    return sum(not chunk.may_have_been_sent for chunk in result.failed)


async def _batch(args: argparse.Namespace) -> None:
    if args.resend_in_flight and args.journal is None:
        raise _Exit("--resend-in-flight needs --journal")
    count = _count(args.to, args.column)
    method = "send_batch_attach_msg" if args.attach else "send_batch_msg"
    with contextlib.ExitStack() as inputs, _ProgressBar() as bar:
        async with _client(args) as client:
            estimate = None if count is None else client.estimate_batch(method, count)
            run = _BatchRun(count, estimate, None, bar)
            job, result, accids = await _send_pass(client, args, inputs, run)
            maybe = sum(chunk.may_have_been_sent for chunk in result.failed)
            if args.reconcile and not args.attach and maybe:
                settled = await client.reconcile(job)
                unsent = _surely_unsent(settled) - _surely_unsent(result)
                left = sum(chunk.may_have_been_sent for chunk in settled.failed)
                print(
                    f"nim-async: settled {maybe - left} of {maybe} chunks that may have been "
                    f"sent with the service's history: {unsent} were not sent",
                    file=sys.stderr,
                )
                result = settled
                # A file (counted) can be read again from its start; stdin and pipes cannot.
                if unsent and args.journal is not None and count is not None:
                    # The journal now records them as surely unsent: one more pass sends them.
                    job, result, accids = await _send_pass(client, args, inputs, run)
        bar.close()
        _report(result, run, accids, args.failed_to, args.maybe_sent_to)
