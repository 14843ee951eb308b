"""Bulk sends: recipient chunking and bounded concurrency, recorded in a ``BatchJob``.

The runner sits above the pipeline (it sends each chunk through
``Pipeline.call_chunk``) and below the client. Every input recipient ends in
exactly one place: accepted, ``unregister``, or a ``FailedChunk``. A failed
chunk never stops the others.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Collection, Iterable, Mapping
from typing import cast

import anyio
import anyio.abc
import anyio.lowlevel

from ._config import refuse
from ._endpoints import Answer, Endpoint
from ._errors import (
    ChunkCancelled,
    JournalMismatch,
    JournalUnavailable,
    NimAPIError,
    NimError,
    RateLimited,
    SlotTimeout,
)
from ._fields import Form
from ._journal import ChunkRecord, chunk_digest, job_fingerprint, service_of
from ._outcomes import check_against, read_answer, record_of, replayed
from ._pace import Pace
from ._pipeline import Pipeline
from ._results import BatchJob, BatchResult, ChunkOutcome, FailedChunk, Progress, SentChunk
from ._telemetry import telemetry
from ._validate import split_recipients

__all__ = [
    "ChunkRunner",
    "Recipients",
    "check_max_concurrency",
    "send_in_chunks",
]

Recipients = Iterable[str] | AsyncIterable[str]
ProgressCallback = Callable[[Progress], object]
# The longest a job goes without reporting its progress, even while it waits.
PROGRESS_EVERY = 1.0
# The longest an answer's journal write may hold up a job stopped at once.
_JOURNAL_WRITE_TIME = 5.0


def check_max_concurrency(value: object) -> int:
    """Return ``value`` if it is a valid ``max_concurrency``.

    Raises:
        ConfigurationError: Not an int of at least 1.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise refuse("max_concurrency", "an int of at least 1", value)
    return value


class ChunkRunner:
    """Sends one bulk job: reads the recipients lazily, ``max_concurrency`` chunks in flight.

    At most ``max_concurrency + 1`` chunks are held in memory at once,
    whatever the input's length. Used once, through `run`.

    Args:
        pipeline: Sends each chunk.
        endpoint: The batch action.
        form: The job's form, already checked, without ``toAccids``.
        chunk_size: Recipients per call.
        max_concurrency: Calls in flight at once.
        on_progress: Called after every chunk (awaited if it returns an awaitable).
        job: Where the outcomes are recorded as they come.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        endpoint: Endpoint[Answer],
        form: Form,
        *,
        chunk_size: int,
        max_concurrency: int,
        on_progress: ProgressCallback | None,
        job: BatchJob,
        place_all: bool,
        records: Mapping[int, ChunkRecord],
    ) -> None:
        self._pipeline = pipeline
        self._endpoint = endpoint
        self._form = form
        self._chunk_size = chunk_size
        self._on_progress = on_progress
        self._job = job
        # A list given whole is placed whole even when the job stops early;
        # a stream's unread recipients stay in the caller's iterator.
        self._place_all = place_all
        self._slots = anyio.Semaphore(max_concurrency)
        self._reporting = anyio.Lock()
        self._last_report = 0.0
        self._callback_failed = False
        # The first report waits until a resumed journal's chunks were replayed,
        # so that it counts them: the caller's bar starts where the job stands.
        self._announced = False
        self._next_index = 0
        # A resumed journal: sends wait until every chunk it recorded was read
        # again and matched, so a changed input is refused before anything goes out.
        self._records = records
        self._last_recorded = max(records, default=-1)
        self._held: list[tuple[int, list[str]]] = []
        self._pending: list[str] = []
        self._pending_start = 0  # the input position of the first pending recipient
        # The chunks not yet on the wire, by index: a stopped job ends their wait.
        self._unsent: dict[int, anyio.CancelScope] = {}
        job.on_stop(self._give_up_waits)

    async def run(self, recipients: Recipients) -> BatchResult:
        """Send every recipient and return the merged result.

        Raises:
            BaseException: Whatever stopped the job (a cancel, the caller's
                iterator or callback failing), after every recipient read so
                far was recorded in the job. An error of the caller's own code
                is raised as itself, not wrapped in an exception group.
        """
        try:
            if not self._records:
                await self._announce()  # before the first call: the total and the estimate
            async with anyio.create_task_group() as ticker:
                ticker.start_soon(self._tick)
                try:
                    await self._read_and_send(recipients)
                finally:
                    ticker.cancel_scope.cancel()
        except BaseException as cause:
            if self._pending:
                self._cut_off(self._take_index(), self._pending, sent=False, cause=cause)
            for index, chunk in self._held:
                self._cut_off(index, chunk, sent=False, cause=cause)
            self._held = []
            lone = _lone_error(cause)
            if lone is cause:
                raise
            raise lone from None
        return self._job.result()

    async def _tick(self) -> None:
        # A job waiting a minute on the batch budget still reports: a bar never freezes.
        if self._on_progress is None:
            return
        while True:
            await anyio.sleep(max(self._last_report + PROGRESS_EVERY - anyio.current_time(), 0))
            if self._announced and anyio.current_time() - self._last_report >= PROGRESS_EVERY:
                await self._report_progress()

    async def _read_and_send(self, recipients: Recipients) -> None:
        async with anyio.create_task_group() as group:
            # Chunks are built here, not in a generator, so that a cancel
            # finds the recipients already read and accounts for them.
            if isinstance(recipients, AsyncIterable):
                async for accid in recipients:
                    if not await self._add(group, accid):
                        break
            else:
                for accid in recipients:
                    if not await self._add(group, accid):
                        break
            if self._pending:
                await self._dispatch(group)
            await self._announce()
            if self._next_index <= self._last_recorded and self._job.stopped is None:
                raise JournalMismatch(
                    "the recipients end before the journal's chunks do: it records "
                    "another list of recipients; nothing was sent"
                )
            await self._release_held(group)

    def _take_index(self) -> int:
        self._next_index += 1
        return self._next_index - 1

    async def _add(self, group: anyio.abc.TaskGroup, accid: str) -> bool:
        """Take one recipient; False when the job stopped and the rest stays unread."""
        self._pending.append(accid)
        if self._job.stopped is not None and not self._place_all:
            # Read already, so placed: as surely unsent, with the reason.
            self._job.record(
                self._take_index(), FailedChunk(tuple(self._pending), self._job.stopped)
            )
            self._pending = []
            return False
        if len(self._pending) == self._chunk_size:
            await self._dispatch(group)
        return True

    async def _dispatch(self, group: anyio.abc.TaskGroup) -> None:
        # The chunk stays pending while this waits: a cancel here finds it there.
        await self._slots.acquire()
        chunk, start = self._pending, self._pending_start
        self._pending = []
        self._pending_start += len(chunk)
        good, refused = split_recipients(chunk, start)
        if refused is not None:
            # Bad accids read from a stream fail on their own; the rest goes out.
            self._job.record(self._take_index(), FailedChunk(refused.accids, refused.error))
        if not good or self._job.stopped is not None:
            self._slots.release()
            if good:
                assert self._job.stopped is not None
                self._job.record(self._take_index(), FailedChunk(tuple(good), self._job.stopped))
            return
        index = self._take_index()
        record = self._records.get(index)
        if record is not None:
            if record.digest != chunk_digest(good):
                self._slots.release()
                raise JournalMismatch(
                    f"chunk {index} holds other recipients than the journal recorded: "
                    "it was made for another list; nothing was sent"
                )
            if self._replay(index, good, record):
                self._slots.release()
                await self._release_held_after(index, group)
                return
        if index < self._last_recorded:
            self._slots.release()
            self._held.append((index, good))
            return
        try:
            await self._announce()
        except BaseException as cause:
            # The caller's callback failed, or a cancel came: the chunk still gets its place.
            self._slots.release()
            self._cut_off(index, good, sent=False, cause=cause)
            raise
        group.start_soon(self._send, index, good)
        await self._release_held_after(index, group)

    async def _release_held_after(self, index: int, group: anyio.abc.TaskGroup) -> None:
        if index >= self._last_recorded:
            await self._release_held(group)

    async def _release_held(self, group: anyio.abc.TaskGroup) -> None:
        """Send the chunks a resumed journal held back, once every recorded chunk matched."""
        if self._held:
            await self._announce()
        while self._held:
            # Taken from the list only with its slot: a cancel while waiting
            # leaves it there, for `run` to place.
            await self._slots.acquire()
            index, chunk = self._held.pop(0)
            if self._job.stopped is not None:
                self._slots.release()
                self._job.record(index, FailedChunk(tuple(chunk), self._job.stopped))
                continue
            group.start_soon(self._send, index, chunk)

    def _replay(self, index: int, chunk: list[str], record: ChunkRecord) -> bool:
        """Place a chunk from its journal record; False when it is to be sent (again)."""
        outcome = replayed(record, chunk, self._endpoint.action, self._job.resend_in_flight)
        if outcome is None:
            return False
        went_out = None
        if record.at is not None:
            # The deadline the earlier run gave the request, if longer than ours.
            went_out = (record.at, max(record.hold or 0.0, self._pipeline.hold))
        self._job.replay(index, outcome, went_out)
        return True

    def _cut_off(self, index: int, chunk: list[str], *, sent: bool, cause: BaseException) -> None:
        stage = "after its request went out" if sent else "before its request went out"
        reason = f"the job stopped ({type(cause).__name__}) {stage}"
        error = ChunkCancelled(reason, action=self._endpoint.action, may_have_reached_server=sent)
        self._job.record(index, FailedChunk(tuple(chunk), error))

    def _give_up_waits(self) -> None:
        for waiting in self._unsent.values():
            waiting.cancel()

    async def _send(self, index: int, chunk: list[str]) -> None:
        sent = False
        journal = self._job.journal
        digest = chunk_digest(chunk) if journal is not None else ""

        async def on_send() -> None:
            nonlocal sent
            if self._unsent.pop(index, None) is not None and self._job.stopped is not None:
                # Stopped while this chunk waited for its slot: it stays unsent.
                waiting.cancel()
                await anyio.lowlevel.checkpoint()
            if not sent:
                self._job.count_call()
            now = time.time()
            if journal is not None:
                # Durable before the request goes out: after a crash, this
                # chunk is known to have been in flight, and since when.
                record = ChunkRecord(digest, "sending", at=now, hold=self._pipeline.hold)
                await journal.write(index, record)
            self._job.went_out(index, now, self._pipeline.hold)
            sent = True

        with anyio.CancelScope() as waiting:
            self._unsent[index] = waiting
            if self._job.stopped is not None:
                waiting.cancel()
            try:
                await self._send_and_record(index, chunk, digest, on_send, lambda: sent)
            except BaseException as cause:
                stopped = self._job.stopped
                if self._job.recorded(index):
                    pass  # its answer came and is recorded
                elif waiting.cancel_called and not sent and stopped is not None:
                    self._job.record(index, FailedChunk(tuple(chunk), stopped))
                else:
                    # Cancelled, or stopped by an unexpected error: the chunk still
                    # gets its one place, saying whether its request went out.
                    self._cut_off(index, chunk, sent=sent, cause=cause)
                raise
            finally:
                self._unsent.pop(index, None)
                self._slots.release()
        await self._report_progress()

    async def _send_and_record(
        self,
        index: int,
        chunk: list[str],
        digest: str,
        on_send: Callable[[], Awaitable[None]],
        was_sent: Callable[[], bool],
    ) -> None:
        journal = self._job.journal
        try:
            answer = await self._pipeline.call_chunk(self._endpoint, self._form, chunk, on_send)
        except NimError as error:
            outcome: ChunkOutcome = FailedChunk(tuple(chunk), error)
            if _stops_the_job(error):
                self._job.stop(error)
        else:
            outcome = read_answer(chunk, answer, self._endpoint.action)
        # The answer is known: recorded first, so that a cancel during the
        # journal's write cannot turn it back into "may have been sent".
        self._job.record(index, outcome)
        _count_recipients(self._endpoint.action, outcome)
        if journal is not None and was_sent():
            # Shielded, briefly: a stop at once still leaves the journal true.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_JOURNAL_WRITE_TIME):
                try:
                    await journal.write(index, record_of(digest, outcome, at=time.time()))
                except JournalUnavailable as error:
                    # Its record stays "sending": a resume finds it maybe-sent, and
                    # nothing more goes out unrecorded.
                    self._job.stop(error)

    async def _announce(self) -> None:
        """The first report: before the first call, after any replay from the journal."""
        if not self._announced:
            self._announced = True
            await self._report_progress()

    async def _report_progress(self) -> None:
        if self._on_progress is None:
            return
        # One report at a time, and none after one failed: the caller gets
        # their callback's error once, as itself.
        async with self._reporting:
            if self._callback_failed:
                return
            self._last_report = anyio.current_time()
            try:
                reported = self._on_progress(self._job.progress)
                if inspect.isawaitable(reported):
                    await reported
            except BaseException:
                self._callback_failed = True
                raise


def _stops_the_job(error: NimError) -> bool:
    """An error every chunk would meet: stop rather than spend the budget on refusals.

    A journal that cannot be written stops the job too: no chunk goes out unrecorded.
    So does a refused rate-limit slot (``SlotTimeout``, or a 416 whose block
    outlasts the wait): the chunks after it would wait as long and be refused too.

    The client has already checked each chunk's toAccids, so a 414 names a
    common field or the signature (a wrong AppSecret); 403 an app without the
    permission; 404 a sender that does not exist (unknown recipients come back
    in ``unregister`` instead); 301/302/315/422/423 an account or an IP the
    server refuses (NetEase's 状态码 (status codes) page).
    """
    if isinstance(error, (JournalUnavailable, SlotTimeout, RateLimited)):
        return True
    return isinstance(error, NimAPIError) and error.code in _JOB_STOPPING_CODES


_JOB_STOPPING_CODES = frozenset({301, 302, 315, 403, 404, 414, 422, 423})


def _count_recipients(action: str, outcome: ChunkOutcome) -> None:
    count = telemetry().batch_recipients
    if isinstance(outcome, SentChunk):
        count(action, "accepted", outcome.size - len(outcome.unregister))
        count(action, "unregistered", len(outcome.unregister))
    else:
        count(action, "maybe_sent" if outcome.may_have_been_sent else "unsent", len(outcome.accids))


def _lone_error(error: BaseException) -> BaseException:
    """The single error inside (nested) exception groups, or ``error`` itself.

    anyio wraps an error raised in a task group, even one from the caller's
    own iterator or callback, in an ExceptionGroup: ``except DbError`` must
    still catch it.
    """
    leaves: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop()
        inner = getattr(current, "exceptions", None)
        if isinstance(current, BaseException) and isinstance(inner, tuple):
            pending.extend(inner)
        else:
            leaves.append(current)
    if len(leaves) == 1 and isinstance(leaves[0], Exception):
        return leaves[0]
    return error


async def send_in_chunks(
    pipeline: Pipeline,
    endpoint: Endpoint[Answer],
    arguments: Mapping[str, object],
    *,
    chunk_size: int,
) -> BatchResult:
    """Run the bulk send a batch method was called with: check everything, then send.

    ``arguments`` are the method's: the endpoint's keywords, its recipients,
    ``max_concurrency``, ``on_progress`` and ``job``.

    Raises:
        ConfigurationError: ``max_concurrency``, ``on_progress`` or ``job`` is
            wrong, or ``job`` was used before; nothing was sent.
        InvalidRequest: A parameter breaks its rule, or a collection of
            recipients holds a bad accid; nothing was sent.
    """
    assert endpoint.recipients is not None
    recipients = arguments[endpoint.recipients]
    max_concurrency = check_max_concurrency(arguments["max_concurrency"])
    on_progress = arguments["on_progress"]
    if on_progress is not None and not callable(on_progress):
        raise refuse("on_progress", "a callable or None", on_progress)
    job = BatchJob() if arguments["job"] is None else arguments["job"]
    if not isinstance(job, BatchJob):
        raise refuse("job", "a BatchJob or None", job)
    form = pipeline.batch_form(endpoint, arguments, recipients)
    job.claim()
    if isinstance(recipients, Collection):
        job.total = len(recipients)
    records: dict[int, ChunkRecord] = {}
    job.request = (endpoint.action, dict(form))
    job.fingerprint = job_fingerprint(
        endpoint.action,
        form,
        chunk_size,
        app_key=pipeline.app_key,
        service=service_of(pipeline.hosts.urls),
    )
    try:
        if job.journal is not None:
            records = await job.journal.open(job.fingerprint)
            if records and isinstance(recipients, Collection):
                check_against(records, recipients, chunk_size)
            # A restarted process's limiter knows nothing of the calls its
            # predecessor made a moment ago: the journal does.
            await pipeline.note_past_calls(endpoint.action, _ages(records, pipeline.hold))
        limits = pipeline.rate_limits and pipeline.rate_limits.for_action(endpoint.action)
        rates = () if not limits else tuple((rate.calls, rate.per) for rate in limits.rates)
        job.start(
            None if job.total is None else pipeline.estimate(endpoint, job.total, chunk_size),
            Pace(rates, chunk_size, max_concurrency),
        )
        runner = ChunkRunner(
            pipeline,
            endpoint,
            form,
            chunk_size=chunk_size,
            max_concurrency=max_concurrency,
            on_progress=on_progress,
            job=job,
            place_all=isinstance(recipients, Collection),
            records=records,
        )
        return await _run_holding(job, runner, cast(Recipients, recipients))
    finally:
        if job.journal is not None:
            await job.journal.aclose()


def _ages(records: Mapping[int, ChunkRecord], hold: float) -> list[float]:
    """How long ago each recorded call was answered, as far as the server could tell.

    A call in flight at a crash arrived before its deadline (``hold``) or not at all.
    """
    now = time.time()
    ages = []
    for record in records.values():
        if record.at is not None:
            deadline = max(record.hold or 0.0, hold)
            answered = record.at + deadline if record.state == "sending" else record.at
            ages.append(max(now - answered, 0.0))
    return ages


async def _run_holding(job: BatchJob, runner: ChunkRunner, recipients: Recipients) -> BatchResult:
    """Run the job while keeping the journal's lease, for journals that hold one (Redis).

    A lease that cannot be renewed (lost to another runner, or the store gone)
    stops the job as any unwritable journal does: nothing more goes out.
    """
    keep_held = getattr(job.journal, "keep_held", None)
    if keep_held is None:
        return await runner.run(recipients)

    async def hold() -> None:
        try:
            await keep_held()
        except JournalUnavailable as error:
            job.stop(error)

    async with anyio.create_task_group() as group:
        group.start_soon(hold)
        try:
            result = await runner.run(recipients)
        finally:
            group.cancel_scope.cancel()
    return result
