"""Bulk sends: recipient chunking, bounded concurrency, and one merged ``BatchResult``.

Every input recipient ends in exactly one place: accepted, ``unregister``, or
a ``FailedChunk``. A failed chunk never stops the others.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
)
from typing import Any

import anyio
import attrs

from ._errors import ChunkCancelled, InvalidRequest, NimConnectionError, NimError, ServerError
from ._forms import json_text
from ._pipeline import Endpoint, Pipeline
from ._validate import validate

__all__ = [
    "BatchFailed",
    "BatchJob",
    "BatchResult",
    "FailedChunk",
    "Progress",
    "Recipients",
    "call_in_chunks",
    "parse_unregister",
    "send_in_chunks",
]

Recipients = Iterable[str] | AsyncIterable[str]
Answer = dict[str, Any]


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
        return isinstance(self.error, ServerError)


@attrs.frozen
class Progress:
    """Where a bulk send stands, passed to ``on_progress`` after every chunk.

    Attributes:
        done: Recipients whose chunk has finished, successfully or not.
        total: All recipients, when the input has a length; else None.
        failed_chunks: Chunks that failed so far.
    """

    done: int
    total: int | None
    failed_chunks: int


@attrs.frozen
class BatchResult:
    """The merged outcome of a bulk send.

    Attributes:
        accepted: Recipients the server accepted.
        unregister: Recipients the server does not know, in input order.
        msgids: Message id per recipient (when msg ids were asked for).
        failed: Chunks that failed; their recipients are in no other place.
        calls: Batch calls made (chunks attempted).
    """

    accepted: int = 0
    unregister: list[str] = attrs.Factory(list)
    msgids: dict[str, int] = attrs.Factory(dict)
    failed: list[FailedChunk] = attrs.Factory(list)
    calls: int = 0

    @property
    def ok(self) -> bool:
        """True when no chunk failed."""
        return not self.failed

    @property
    def failed_count(self) -> int:
        """Recipients in failed chunks."""
        return sum(len(chunk.accids) for chunk in self.failed)

    def raise_for_failures(self) -> None:
        """Raise ``BatchFailed`` carrying this result if any chunk failed."""
        if self.failed:
            raise BatchFailed(self)


class BatchFailed(NimError):
    """Raised by ``BatchResult.raise_for_failures()`` when chunks failed.

    Attributes:
        result: The whole result, failed chunks included.
    """

    def __init__(self, result: BatchResult) -> None:
        self.result = result
        super().__init__(
            f"{len(result.failed)} of {result.calls} batch calls failed "
            f"({result.failed_count} recipients); first error: {result.failed[0].error}"
        )


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


def _check_accids(recipients: Collection[str]) -> None:
    # A list in memory is checked whole before anything is sent, so that a bad
    # accid at position 900,000 never leaves the job half done.
    for position, accid in enumerate(recipients):
        if not isinstance(accid, str) or not 0 < len(accid) <= 32:
            raise InvalidRequest(
                "toAccids", "accids of 1 to 32 characters", f"{accid!r} at position {position}"
            )


@attrs.frozen
class _Sent:
    size: int
    unregister: list[str]
    msgids: dict[str, int]


def _read_answer(chunk: list[str], answer: Answer, action: str) -> _Sent | FailedChunk:
    """Read one chunk's answer now, so that a malformed one fails only its own chunk."""
    try:
        msgids = {str(accid): int(msgid) for accid, msgid in (answer.get("msgids") or {}).items()}
        return _Sent(len(chunk), parse_unregister(answer.get("unregister")), msgids)
    except (TypeError, ValueError, AttributeError) as exc:
        # The server took the call and answered 200: the chunk may have gone out.
        error = ServerError(200, f"malformed batch answer: {exc}", action)
        return FailedChunk(tuple(chunk), error)


class BatchJob:
    """The running record of one bulk send, readable at any moment, even after a cancel.

    Pass one as ``job=`` to ``send_batch_msg`` / ``send_batch_attach_msg`` when the
    send may be cancelled (a timeout, a shutdown): ``job.result()`` then still
    puts every recipient read so far in exactly one place. Chunks cut off by
    the cancel are failed with ``ChunkCancelled``, whose
    ``may_have_reached_server`` says whether their request had gone out.
    Recipients not yet read are still in your iterator.
    """

    __slots__ = ("_calls", "_done", "_failed", "_outcomes", "total")

    def __init__(self) -> None:
        self._outcomes: dict[int, _Sent | FailedChunk] = {}
        self._calls = 0
        self._done = 0
        self._failed = 0
        self.total: int | None = None

    @property
    def progress(self) -> Progress:
        """Where the job stands now."""
        return Progress(self._done, self.total, self._failed)

    def _record(self, index: int, outcome: _Sent | FailedChunk) -> None:
        self._outcomes[index] = outcome
        self._done += outcome.size if isinstance(outcome, _Sent) else len(outcome.accids)
        self._failed += isinstance(outcome, FailedChunk)

    def result(self) -> BatchResult:
        """Merge the chunk outcomes so far, in input order, whatever order they finished in."""
        result = BatchResult(calls=self._calls)
        accepted = 0
        for index in sorted(self._outcomes):
            outcome = self._outcomes[index]
            if isinstance(outcome, FailedChunk):
                result.failed.append(outcome)
                continue
            result.unregister.extend(outcome.unregister)
            result.msgids.update(outcome.msgids)
            accepted += outcome.size - len(outcome.unregister)
        return attrs.evolve(result, accepted=accepted)


async def send_in_chunks(
    recipients: Recipients,
    send: Callable[[list[str], Callable[[], None]], Awaitable[Answer]],
    *,
    action: str,
    chunk_size: int,
    max_concurrency: int,
    on_progress: Callable[[Progress], object] | None = None,
    job: BatchJob | None = None,
) -> BatchResult:
    """Send to ``recipients`` in chunks, at most ``max_concurrency`` at a time.

    The input is read lazily: at most ``max_concurrency + 1`` chunks are held
    in memory at once, whatever its length.

    Args:
        recipients: Accids, from any iterable or async iterable.
        send: Sends one chunk and returns the server's answer; it calls its
            second argument just before the request goes on the wire.
        action: The NIM action, for errors.
        chunk_size: Recipients per call.
        max_concurrency: Calls in flight at once.
        on_progress: Called after every chunk (awaited if it returns an awaitable).
        job: Where the outcomes are recorded as they come; a new one if None.

    Raises:
        InvalidRequest: ``recipients`` is a string, or a collection holding a bad accid.
    """
    if isinstance(recipients, str):
        raise InvalidRequest("toAccids", "an iterable of accids, not a single string")
    if max_concurrency < 1:
        raise InvalidRequest("max_concurrency", "at least 1", max_concurrency)
    job = BatchJob() if job is None else job
    if isinstance(recipients, Collection):
        _check_accids(recipients)
        job.total = len(recipients)
    slots = anyio.Semaphore(max_concurrency)

    def cut_off(index: int, chunk: list[str], *, sent: bool, cause: BaseException) -> None:
        stage = "after its request went out" if sent else "before its request went out"
        reason = f"the job stopped ({type(cause).__name__}) {stage}"
        error = ChunkCancelled(reason, action=action, may_have_reached_server=sent)
        job._record(index, FailedChunk(tuple(chunk), error))

    async def run(index: int, chunk: list[str]) -> None:
        sent = False

        def on_send() -> None:
            nonlocal sent
            sent = True

        try:
            try:
                answer = await send(chunk, on_send)
            except NimError as error:
                job._record(index, FailedChunk(tuple(chunk), error))
            else:
                job._record(index, _read_answer(chunk, answer, action))
        except BaseException as cause:
            # Cancelled, or stopped by an unexpected error: the chunk still
            # gets its one place, saying whether its request went out.
            cut_off(index, chunk, sent=sent, cause=cause)
            raise
        finally:
            slots.release()
        if on_progress is not None and inspect.isawaitable(reported := on_progress(job.progress)):
            await reported

    index = 0
    chunk: list[str] = []

    async def dispatch() -> None:
        nonlocal index, chunk
        await slots.acquire()
        job._calls += 1
        group.start_soon(run, index, chunk)
        index += 1
        chunk = []

    try:
        async with anyio.create_task_group() as group:
            # Chunks are built here, not in a generator, so that a cancel finds
            # the recipients already read and accounts for them.
            if isinstance(recipients, AsyncIterable):
                async for accid in recipients:
                    chunk.append(accid)
                    if len(chunk) == chunk_size:
                        await dispatch()
            else:
                for accid in recipients:
                    chunk.append(accid)
                    if len(chunk) == chunk_size:
                        await dispatch()
            if chunk:
                await dispatch()
    except BaseException as cause:
        if chunk:
            cut_off(index, chunk, sent=False, cause=cause)
        raise
    return job.result()


async def call_in_chunks(
    pipeline: Pipeline,
    endpoint: Endpoint[Answer],
    form: Mapping[str, str | None],
    recipients: Recipients,
    *,
    chunk_size: int,
    max_concurrency: int,
    on_progress: Callable[[Progress], object] | None,
    job: BatchJob | None,
) -> BatchResult:
    """Send ``form`` to ``recipients`` through ``endpoint``, one ``toAccids`` chunk per call.

    Every parameter but ``toAccids`` is checked once, before the first chunk;
    each chunk's ``toAccids`` is checked before that chunk is sent.
    """
    validate(endpoint.action, {name: value for name, value in form.items() if value is not None})

    async def send(chunk: list[str], on_send: Callable[[], None]) -> Answer:
        return await pipeline.call(
            endpoint, {**form, "toAccids": json_text(chunk)}, on_send=on_send
        )

    return await send_in_chunks(
        recipients,
        send,
        action=endpoint.action,
        chunk_size=chunk_size,
        max_concurrency=max_concurrency,
        on_progress=on_progress,
        job=job,
    )
