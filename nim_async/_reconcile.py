"""Settling a bulk job's may-have-been-sent chunks by asking the service's message history.

A chunk whose answer was lost (a timeout, a crash) may or may not have been
delivered, and only the service can tell. A message sent with sendBatchMsg
lands in the cloud history of each sender-recipient session (NetEase's
sendBatchMsg ``option.history``: "该消息是否存云端历史,默认true"), which
history/querySessionMsg reads. A batch call is carried out for the whole
chunk or not at all, so:

- a chunk with its message in some recipient's history was delivered: its
  recipients without the message are the ones the service does not know
  (``unregister``);
- a chunk with its message in no recipient's history was not delivered, once
  its request can no longer be on its way (its deadline has passed) and the
  service has had a grace to write its history (10 s by default).

A message of the same sender, type and body in a recipient's session within a
minute of the chunk's window (from its send to its deadline) is taken for the
chunk's: send the same text to the same person twice in a minute and the
history cannot tell the two apart.

System notifications (sendAttachMsg, sendBatchAttachMsg) and messages sent
with ``history=False`` are not stored in history: their chunks stay
may-have-been-sent, and nothing is guessed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from . import _actions
from ._config import refuse
from ._errors import NimConnectionError, NimError
from ._journal import ChunkRecord, Journal, chunk_digest
from ._models import SessionHistory
from ._outcomes import record_of
from ._results import BatchJob, BatchResult, ChunkOutcome, FailedChunk, SentChunk

__all__ = ["DEFAULT_GRACE", "reconcile"]

logger = logging.getLogger("nim_async")

QueryHistory = Callable[..., Awaitable[SessionHistory]]

# Either side of a chunk's send: the service stamps messages with its own clock.
CLOCK_MARGIN = 60.0
# How long after a chunk's deadline its absence from the history counts as "not
# sent": the service may still be writing a message it took late.
DEFAULT_GRACE = 10.0
# Pages of one session read for one chunk at the most (100 messages a page).
MAX_PAGES = 20
# History queries in flight at once (the limiter paces them: 100/s by default).
QUERIES_AT_ONCE = 8


async def reconcile(
    query: QueryHistory, subject: BatchJob | BatchResult, *, grace: float = DEFAULT_GRACE
) -> BatchResult:
    """Settle the may-have-been-sent chunks of a sendBatchMsg job with the service's history.

    Args:
        query: ``client.query_session_msg``.
        subject: The job, or a result it produced.
        grace: Seconds after a chunk's deadline before its absence counts.

    Returns:
        The job's result with each settled chunk accepted (``unregister``
        holding its recipients without the message) or failed as surely unsent.

    Raises:
        ConfigurationError: ``subject`` is not a job that ran (or its result).
        JournalUnavailable: The job's journal could not record what was settled.
    """
    job = subject.job if isinstance(subject, BatchResult) else subject
    if not isinstance(job, BatchJob) or job.request is None:
        raise refuse("job", "a BatchJob that ran, or the BatchResult it returned", subject)
    action, form = job.request
    maybe = [(index, chunk, sent) for index, chunk, sent in job.maybe_sent() if sent is not None]
    if action != _actions.SEND_BATCH_MSG or not _kept_in_history(form) or not maybe:
        return job.result()
    settled: dict[int, tuple[tuple[str, ...], ChunkOutcome]] = {}
    queries = anyio.CapacityLimiter(QUERIES_AT_ONCE)

    async def settle(index: int, chunk: FailedChunk, sent: tuple[float, float]) -> None:
        try:
            outcome = await _settle_chunk(query, queries, form, chunk, sent, grace)
        except NimError as error:
            logger.warning(
                "a chunk of %d recipients could not be settled with the service's history "
                "(%s); it stays may-have-been-sent",
                len(chunk.accids),
                error,
            )
            return
        settled[index] = (chunk.accids, outcome)

    async with anyio.create_task_group() as group:
        for index, chunk, sent in maybe:
            group.start_soon(settle, index, chunk, sent)
    if settled and job.journal is not None and job.fingerprint is not None:
        await _record(job.journal, job.fingerprint, settled)
    for index, (_, outcome) in settled.items():
        job.settle(index, outcome)
    return job.result()


async def _record(
    journal: Journal, fingerprint: str, settled: dict[int, tuple[tuple[str, ...], ChunkOutcome]]
) -> None:
    """Write the verdicts, each only over the record it settles.

    Another runner may have resumed the job meanwhile and recorded the chunk
    otherwise (sent again, say): its record stands, and so does the chunk's
    place in this result.
    """
    records = await journal.open(fingerprint)
    try:
        for index, (accids, outcome) in list(settled.items()):
            digest = chunk_digest(accids)
            record = records.get(index)
            if record is None or record.digest != digest or not _unsettled(record):
                del settled[index]
                continue
            await journal.write(index, record_of(digest, outcome, at=time.time()))
    finally:
        await journal.aclose()


def _unsettled(record: ChunkRecord) -> bool:
    """A record of a chunk that may have been sent: in flight, or failed ambiguously."""
    outcome = record.outcome or {}
    return record.state == "sending" or (
        record.state == "failed" and outcome.get("may_have_been_sent") is True
    )


def _kept_in_history(form: Mapping[str, Any]) -> bool:
    """Whether the service keeps this message in history (option ``history``, default true)."""
    try:
        option = json.loads(form.get("option") or "{}")
    except ValueError:
        return False
    return not (isinstance(option, dict) and option.get("history") is False)


async def _settle_chunk(
    query: QueryHistory,
    queries: anyio.CapacityLimiter,
    form: Mapping[str, Any],
    chunk: FailedChunk,
    sent: tuple[float, float],
    grace: float,
) -> ChunkOutcome:
    """Look now; a chunk found nowhere is looked for again once its deadline and the
    grace have passed, and only then counts as not sent."""
    at, hold = sent
    found = await _search(query, queries, form, chunk.accids, at, hold)
    if not found:
        await anyio.sleep(max(at + hold + grace - time.time(), 0))
        found = await _search(query, queries, form, chunk.accids, at, hold)
    if found:
        wanted = form.get("returnMsgid") == "true"
        unregister = [accid for accid in chunk.accids if accid not in found]
        return SentChunk(len(chunk.accids), unregister, found if wanted else {}, None)
    action = getattr(chunk.error, "action", _actions.SEND_BATCH_MSG)
    error = NimConnectionError(
        "settled with the service: the message is in none of its recipients' history "
        "after its deadline, so it was not delivered",
        action=action,
        may_have_reached_server=False,
    )
    return FailedChunk(chunk.accids, error)


async def _search(
    query: QueryHistory,
    queries: anyio.CapacityLimiter,
    form: Mapping[str, Any],
    accids: tuple[str, ...],
    at: float,
    hold: float,
) -> dict[str, int]:
    """The msgid of the job's message per recipient whose session holds it, sent within the
    chunk's window: from its send to its deadline, widened by the clock margin."""
    begin = int((at - CLOCK_MARGIN) * 1000)
    end = int((min(at + hold, time.time()) + CLOCK_MARGIN) * 1000)
    found: dict[str, int] = {}
    for accid in accids:
        async with queries:
            msgid = await _find(query, form, accid, begin, end)
        if msgid is not None:
            found[accid] = msgid
    return found


async def _find(
    query: QueryHistory, form: Mapping[str, Any], accid: str, begin: int, end: int
) -> int | None:
    """The msgid of the job's message in the session of its sender and ``accid``, if any."""
    sender, kind, body = form["fromAccid"], int(form["type"]), _json(form["body"])
    exclude: int | None = None
    for _ in range(MAX_PAGES):
        page = await query(
            sender,
            accid,
            begin=begin,
            end=end,
            limit=100,
            ascending=True,
            include_no_sense=True,
            exclude_msgid=exclude,
        )
        for message in page.messages:
            if message.from_ == sender and message.type == kind and _json(message.body) == body:
                return message.msgid
        if len(page.messages) < 100:
            return None
        last = page.messages[-1]
        begin, exclude = last.sendtime, last.msgid
    raise NimConnectionError(
        f"more than {MAX_PAGES * 100} messages between {sender} and {accid} in the "
        "window of the send; not settled",
        action=_actions.QUERY_SESSION_MSG,
        may_have_reached_server=False,
    )


def _json(text: object) -> object:
    """JSON text as data, so that spacing and key order do not matter; other text as is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text
