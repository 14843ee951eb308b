"""The outcome of a bulk send: ``FailedChunk``, ``Progress``, ``BatchResult`` and ``BatchJob``.

These sit below the pipeline: they record what happened and import nothing
that sends. Every recipient read from the input ends in exactly one place:
accepted, ``unregister``, or a ``FailedChunk``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ._config import refuse
from ._errors import (
    BatchFailed,
    ConfigurationError,
    InvalidRequest,
    NimAPIError,
    NimConnectionError,
    NimError,
)
from ._journal import Journal
from ._journal_sqlite import SqliteJournal
from ._pace import CallLog, Pace

__all__ = [
    "BatchEstimate",
    "BatchJob",
    "BatchResult",
    "ChunkOutcome",
    "FailedChunk",
    "Progress",
    "SentChunk",
    "estimate",
]


@attrs.frozen
class FailedChunk:
    """One batch call that failed, and the recipients it carried.

    Attributes:
        accids: The chunk's recipients, in input order.
        error: Why it failed.
    """

    accids: tuple[str, ...]
    error: NimError

    @property
    def may_have_been_sent(self) -> bool:
        """True when the server may have delivered the chunk before failing.

        Resend only chunks where this is False to be sure nobody gets the
        message twice; the others need checking first.
        """
        if isinstance(self.error, NimConnectionError):
            return self.error.may_have_reached_server
        if isinstance(self.error, NimAPIError):
            return self.error.may_have_been_carried_out
        # Refused by this client (InvalidRequest) or its limiter: never sent.
        return False


@attrs.frozen
class SentChunk:
    """One batch call the server accepted: how many it carried and what it answered."""

    size: int
    unregister: list[str]
    msgids: dict[str, int]
    timetag: int | None = None


ChunkOutcome = SentChunk | FailedChunk


@attrs.frozen
class Progress:
    """Where a bulk send stands, passed to ``on_progress`` before the first call, after
    every chunk, and at least once a second while the job waits (on the rate limiter).

    Attributes:
        done: Recipients whose chunk has finished, successfully or not.
        total: All recipients, when the input has a length; else None.
        failed_chunks: Chunks that failed so far.
        rate: Recipients this run finished per second since it started (None before any).
        eta: Seconds until the end, from the budget's windows, the calls this job
            made in them and its answer time (not from the recent rate, which
            knows nothing of a wait for the next window); None when the total is
            unknown. Calls other processes make on the same budget lengthen it.
        resumed: Recipients placed from a journal's record of an earlier run
            (part of ``done``; not sent again).
    """

    done: int
    total: int | None
    failed_chunks: int
    rate: float | None = None
    eta: float | None = None
    resumed: int = 0


@attrs.frozen
class BatchEstimate:
    """How long a bulk send takes at the client's current budget.

    Attributes:
        calls: Batch calls the recipients need.
        seconds: The shortest time the budget allows them (answer times not counted).
    """

    calls: int
    seconds: float


@attrs.frozen
class BatchResult:
    """The merged outcome of a bulk send.

    Attributes:
        accepted: Recipients the server accepted.
        unregister: Recipients the server does not know, in input order.
        msgids: Message id per recipient (when msg ids were asked for).
        timetags: The timetag of each recipient's copy, beside its message id:
            ``client.recall(result.msgids[a], result.timetags[a], from_=..., to=a)``
            recalls it (NetEase's 消息功能 page, sendBatchMsg's answer: one
            "timetag" per call).
        failed: Chunks that failed; their recipients are in no other place.
        calls: Batch calls made (chunks attempted).
        stopped: The error that stopped the job early because every chunk
            would meet it (a wrong AppSecret, a missing permission, ...), or
            None. The recipients of a list it never sent are in ``failed``,
            surely unsent; a stream's unread recipients stay in its iterator.
        job: The ``BatchJob`` that recorded the send (``client.reconcile``
            settles its may-have-been-sent chunks), or None.
    """

    accepted: int = 0
    unregister: list[str] = attrs.Factory(list)
    msgids: dict[str, int] = attrs.Factory(dict)
    timetags: dict[str, int] = attrs.Factory(dict)
    failed: list[FailedChunk] = attrs.Factory(list)
    calls: int = 0
    stopped: NimError | None = None
    job: BatchJob | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def ok(self) -> bool:
        """True when no chunk failed."""
        return not self.failed

    @property
    def failed_count(self) -> int:
        """Recipients in failed chunks."""
        return sum(len(chunk.accids) for chunk in self.failed)

    def resendable(self) -> list[str]:
        """The recipients to send again once the cause is fixed: nobody gets it twice.

        Those of failed chunks that surely were not sent, less the ones this
        client refused as bad accids (``InvalidRequest``), which would be
        refused again. Chunks that may have been sent are left out: check them first.
        """
        return [
            accid
            for chunk in self.failed
            if not chunk.may_have_been_sent and not isinstance(chunk.error, InvalidRequest)
            for accid in chunk.accids
        ]

    def raise_for_failures(self) -> None:
        """Raise ``BatchFailed`` carrying this result if any chunk failed."""
        if self.failed:
            raise BatchFailed(self)


class BatchJob:
    """The running record of one bulk send, readable at any moment, even after a cancel.

    Pass one as ``job=`` to ``send_batch_msg`` / ``send_batch_attach_msg`` when the
    send may be cancelled (a timeout, a shutdown): ``job.result()`` then still
    puts every recipient read so far in exactly one place. Chunks cut off by
    the cancel are failed with ``ChunkCancelled``, whose
    ``may_have_reached_server`` says whether their request had gone out.
    Recipients not yet read are still in your iterator.

    A job records one send: passing it to a second send raises
    ``ConfigurationError`` before anything is sent.

    With a journal the record outlives the process: running the same send
    again (the same message, the same recipients in the same order) with a new
    ``BatchJob`` on the same journal resumes it. Chunks recorded as done are
    not sent again and their outcome is part of the result; chunks recorded as
    surely unsent are sent; chunks that were in flight at the crash are failed
    as may-have-been-sent, unless ``resend_in_flight`` is true.

    Args:
        journal: A path (an SQLite file), a ``RedisJournal``, or None for none.
        resend_in_flight: On resume, send again the chunks that were in flight
            when the previous run stopped (they may then arrive twice).

    Attributes:
        total: How many recipients the send has, once known (a sized ``to``, or
            when the iterator is exhausted); None before.
        stopped: The error that stopped the job early (see
            `BatchResult.stopped`), or None.
        estimate: The budget's estimate of calls and time, set when the send starts.
        pace: The rate limits the send runs under, for the ETA; None without limits.
        request: The action and form the chunks were sent with, which
            `NimClient.reconcile` uses to ask the service's history; None before the
            send starts.
        fingerprint: The job's identity in its journal (app key, service, action,
            message and recipients); None before the send starts.
    """

    __slots__ = (
        "_calls",
        "_done",
        "_failed",
        "_log",
        "_outcomes",
        "_resumed",
        "_sent_at",
        "_started_at",
        "_stop_listeners",
        "_used",
        "estimate",
        "fingerprint",
        "journal",
        "pace",
        "request",
        "resend_in_flight",
        "stopped",
        "total",
    )

    def __init__(
        self,
        journal: Journal | str | os.PathLike[str] | None = None,
        *,
        resend_in_flight: bool = False,
    ) -> None:
        if journal is None or isinstance(journal, Journal):
            self.journal: Journal | None = journal
        elif isinstance(journal, str | os.PathLike):
            self.journal = SqliteJournal(journal)
        else:
            raise refuse("journal", "a path, a RedisJournal or None", journal)
        if not isinstance(resend_in_flight, bool):
            raise refuse("resend_in_flight", "True or False", resend_in_flight)
        self.resend_in_flight = resend_in_flight
        self._outcomes: dict[int, ChunkOutcome] = {}
        self._calls = 0
        self._done = 0
        self._failed = 0
        self._used = False
        self.total: int | None = None
        self.stopped: NimError | None = None
        self.estimate: BatchEstimate | None = None
        self.pace: Pace | None = None
        self._log = CallLog(1)
        self._resumed = 0
        self._stop_listeners: list[Callable[[], object]] = []
        self._started_at: float | None = None
        # What reconciling needs: the action and form sent, the journal's
        # identity of the job, and when each chunk's request went out (epoch s).
        self.request: tuple[str, dict[str, Any]] | None = None
        self.fingerprint: str | None = None
        self._sent_at: dict[int, tuple[float, float]] = {}

    def __repr__(self) -> str:
        return f"BatchJob(calls={self._calls}, done={self._done}, total={self.total})"

    @property
    def progress(self) -> Progress:
        """Where the job stands now, with its rate and ETA."""
        rate = eta = None
        sent = self._done - self._resumed
        if self._started_at is not None and sent:
            rate = sent / max(time.monotonic() - self._started_at, 1e-9)
        if self.total is not None and self.pace is not None:
            eta = self._log.seconds_left(self.pace, self.total - self._done, time.time())
        elif self.total is not None and self.estimate is not None:
            eta = self.estimate.seconds
        return Progress(self._done, self.total, self._failed, rate, eta, self._resumed)

    def start(self, estimate: BatchEstimate | None, pace: Pace | None = None) -> None:
        """Start the clock of the job's rate, with the budget's estimate and what bounds
        its pace (for the ETA)."""
        self._started_at = time.monotonic()
        self.estimate = estimate
        self.pace = pace
        if pace is not None:
            self._log = CallLog(max((calls for calls, _ in pace.rates), default=1))

    def claim(self) -> None:
        """Mark the job as taken by a send.

        Raises:
            ConfigurationError: The job already recorded a send: its chunk
                indexes would restart and overwrite that record.
        """
        if self._used:
            raise ConfigurationError(
                "this BatchJob already recorded a send; use a new BatchJob for each send"
            )
        self._used = True

    def count_call(self) -> None:
        """Count a batch call about to go out (its first attempt)."""
        self._calls += 1

    def stop(self, error: NimError) -> None:
        """Stop the job gently, with ``error`` as the reason (the first reason wins).

        The job reads no more recipients and starts no more calls; chunks still
        waiting for their rate-limit slot give up, surely unsent, with
        ``error``; calls in flight finish and are recorded. The send then
        returns its result, with ``stopped`` set. The job stops itself this way
        when every chunk would meet the same refusal (a wrong sender, a
        signature the server refuses); call it to stop a job from outside, e.g.
        on a signal, and cancel the send to stop at once.
        """
        if self.stopped is None:
            self.stopped = error
            for listener in self._stop_listeners:
                listener()

    def on_stop(self, listener: Callable[[], object]) -> None:
        """Call ``listener`` when the job stops (the send's runner gives up its waits)."""
        self._stop_listeners.append(listener)

    def record(self, index: int, outcome: ChunkOutcome) -> None:
        """Record the outcome of chunk ``index``."""
        self._log.answered(index, time.time())
        self._outcomes[index] = outcome
        if isinstance(outcome, SentChunk):
            self._done += outcome.size
        else:
            self._done += len(outcome.accids)
            self._failed += 1

    def recorded(self, index: int) -> bool:
        """Whether chunk ``index`` has its outcome."""
        return index in self._outcomes

    def went_out(self, index: int, at: float, hold: float) -> None:
        """Note when chunk ``index``'s request went out, in seconds since the epoch, and the
        longest it could take. The last attempt counts: an attempt is retried only after
        a failure that surely did not reach the server (unless ``retry_ambiguous``)."""
        self._sent_at[index] = (at, hold)
        self._log.started(index, at)

    def replay(
        self, index: int, outcome: ChunkOutcome, went_out: tuple[float, float] | None
    ) -> None:
        """Record chunk ``index`` from an earlier run's journal: its outcome, and when its
        request went out and its deadline, if recorded. Its call still holds its slots."""
        if went_out is not None:
            at, hold = went_out
            self._sent_at[index] = went_out
            # A call in flight at a crash was answered by its deadline, or never arrived.
            in_flight = isinstance(outcome, FailedChunk) and outcome.may_have_been_sent
            self._log.past(at, at + hold if in_flight else at)
        self.record(index, outcome)
        self._resumed += outcome.size if isinstance(outcome, SentChunk) else len(outcome.accids)

    def maybe_sent(self) -> list[tuple[int, FailedChunk, tuple[float, float] | None]]:
        """The chunks that may have been sent, with when their request went out and its
        deadline (if known)."""
        return [
            (index, outcome, self._sent_at.get(index))
            for index, outcome in sorted(self._outcomes.items())
            if isinstance(outcome, FailedChunk) and outcome.may_have_been_sent
        ]

    def settle(self, index: int, outcome: ChunkOutcome) -> None:
        """Replace the outcome of a may-have-been-sent chunk with what the server said."""
        if isinstance(self._outcomes.get(index), FailedChunk):
            self._failed -= 1
        if isinstance(outcome, FailedChunk):
            self._failed += 1
        self._outcomes[index] = outcome

    def result(self) -> BatchResult:
        """Merge the chunk outcomes so far, in input order, whatever order they finished in."""
        result = BatchResult(calls=self._calls, stopped=self.stopped, job=self)
        accepted = 0
        for index in sorted(self._outcomes):
            outcome = self._outcomes[index]
            if isinstance(outcome, FailedChunk):
                result.failed.append(outcome)
                continue
            result.unregister.extend(outcome.unregister)
            result.msgids.update(outcome.msgids)
            if outcome.timetag is not None:
                result.timetags.update(dict.fromkeys(outcome.msgids, outcome.timetag))
            accepted += outcome.size - len(outcome.unregister)
        return attrs.evolve(result, accepted=accepted)


def estimate(recipients: int, chunk_size: int, rates: Iterable[tuple[int, float]]) -> BatchEstimate:
    """The calls ``recipients`` need in chunks of ``chunk_size``, and the shortest time
    the rates (calls per seconds) allow them: every full window but the last waits ``per``.
    """
    calls = -(-recipients // chunk_size)
    waits = [((-(-calls // per_calls)) - 1) * per for per_calls, per in rates]
    seconds = max(waits, default=0.0) if calls else 0.0
    return BatchEstimate(calls, float(max(seconds, 0)))
