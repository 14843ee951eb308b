"""Bulk sends: recipient chunking and bounded concurrency, recorded in a ``BatchJob``.

The runner sits above the pipeline (it sends each chunk through
``Pipeline.call_chunk``) and below the client. Every input recipient ends in
exactly one place: accepted, ``unregister``, or a ``FailedChunk``. A failed
chunk never stops the others.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterable, Callable, Collection, Iterable, Mapping
from typing import cast

import anyio
import anyio.abc

from ._config import refuse
from ._endpoints import Answer, Endpoint
from ._errors import ChunkCancelled, MalformedAnswer, NimError
from ._fields import Form
from ._pipeline import Pipeline
from ._results import BatchJob, BatchResult, ChunkOutcome, FailedChunk, Progress, SentChunk

__all__ = [
    "ChunkRunner",
    "Recipients",
    "check_max_concurrency",
    "parse_unregister",
    "send_in_chunks",
]

Recipients = Iterable[str] | AsyncIterable[str]
ProgressCallback = Callable[[Progress], object]


def check_max_concurrency(value: object) -> int:
    """Return ``value`` if it is a valid ``max_concurrency``.

    Raises:
        ConfigurationError: Not an int of at least 1.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise refuse("max_concurrency", "an int of at least 1", value)
    return value


def parse_unregister(value: object) -> list[str]:
    """Read ``unregister`` in both of the server's shapes (facts: "Accept both").

    The seeds show a JSON array and a JSON-encoded string holding one.
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise TypeError(f"unregister is neither a list nor a JSON list: {value!r}")
    return [str(accid) for accid in value]


def _contradiction(chunk: list[str], unregister: list[str], msgids: dict[str, int]) -> str | None:
    named = set(chunk)
    strangers = [accid for accid in (*unregister, *msgids) if accid not in named]
    if strangers:
        return f"the answer names accids the call did not carry: {strangers[:5]}"
    if len(set(unregister)) < len(unregister) or set(unregister) & set(msgids):
        return "the answer names an accid twice"
    return None


def _read_answer(chunk: list[str], answer: Answer, action: str) -> ChunkOutcome:
    """Read one chunk's answer now, so that a malformed one fails only its own chunk.

    An answer that contradicts its request (accids it did not carry) cannot be
    trusted to say who was reached: the chunk fails, as may-have-been-sent.
    """
    try:
        msgids = {str(accid): int(msgid) for accid, msgid in (answer.get("msgids") or {}).items()}
        unregister = parse_unregister(answer.get("unregister"))
    except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        # The server took the call and answered 200: the chunk may have gone out.
        error = MalformedAnswer(200, f"malformed batch answer: {exc}", action)
        return FailedChunk(tuple(chunk), error)
    problem = _contradiction(chunk, unregister, msgids)
    if problem is not None:
        return FailedChunk(tuple(chunk), MalformedAnswer(200, problem, action))
    return SentChunk(len(chunk), unregister, msgids)


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
    ) -> None:
        self._pipeline = pipeline
        self._endpoint = endpoint
        self._form = form
        self._chunk_size = chunk_size
        self._on_progress = on_progress
        self._job = job
        self._slots = anyio.Semaphore(max_concurrency)
        self._next_index = 0
        self._pending: list[str] = []

    async def run(self, recipients: Recipients) -> BatchResult:
        """Send every recipient and return the merged result.

        Raises:
            BaseException: Whatever stopped the job (a cancel, the caller's
                iterator or callback failing), after every recipient read so
                far was recorded in the job.
        """
        try:
            async with anyio.create_task_group() as group:
                # Chunks are built here, not in a generator, so that a cancel
                # finds the recipients already read and accounts for them.
                if isinstance(recipients, AsyncIterable):
                    async for accid in recipients:
                        await self._add(group, accid)
                else:
                    for accid in recipients:
                        await self._add(group, accid)
                if self._pending:
                    await self._dispatch(group)
        except BaseException as cause:
            if self._pending:
                self._cut_off(self._next_index, self._pending, sent=False, cause=cause)
            raise
        return self._job.result()

    async def _add(self, group: anyio.abc.TaskGroup, accid: str) -> None:
        self._pending.append(accid)
        if len(self._pending) == self._chunk_size:
            await self._dispatch(group)

    async def _dispatch(self, group: anyio.abc.TaskGroup) -> None:
        await self._slots.acquire()
        self._job.count_call()
        group.start_soon(self._send, self._next_index, self._pending)
        self._next_index += 1
        self._pending = []

    def _cut_off(self, index: int, chunk: list[str], *, sent: bool, cause: BaseException) -> None:
        stage = "after its request went out" if sent else "before its request went out"
        reason = f"the job stopped ({type(cause).__name__}) {stage}"
        error = ChunkCancelled(reason, action=self._endpoint.action, may_have_reached_server=sent)
        self._job.record(index, FailedChunk(tuple(chunk), error))

    async def _send(self, index: int, chunk: list[str]) -> None:
        sent = False

        def on_send() -> None:
            nonlocal sent
            sent = True

        try:
            try:
                answer = await self._pipeline.call_chunk(self._endpoint, self._form, chunk, on_send)
            except NimError as error:
                self._job.record(index, FailedChunk(tuple(chunk), error))
            else:
                self._job.record(index, _read_answer(chunk, answer, self._endpoint.action))
        except BaseException as cause:
            # Cancelled, or stopped by an unexpected error: the chunk still
            # gets its one place, saying whether its request went out.
            self._cut_off(index, chunk, sent=sent, cause=cause)
            raise
        finally:
            self._slots.release()
        if self._on_progress is not None:
            reported = self._on_progress(self._job.progress)
            if inspect.isawaitable(reported):
                await reported


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
    runner = ChunkRunner(
        pipeline,
        endpoint,
        form,
        chunk_size=chunk_size,
        max_concurrency=max_concurrency,
        on_progress=on_progress,
        job=job,
    )
    return await runner.run(cast(Recipients, recipients))
