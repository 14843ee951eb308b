"""A chunk's outcome: read from its answer, written to a journal, and read back on resume.

A batch answer is read into the chunk's outcome at once, so that a malformed
one (or one that names accids the chunk did not carry) fails only its chunk.
On resume, a chunk recorded as sent is placed with its recorded answer; one that failed
after it may have gone out is placed failed again; one in flight at the crash
is failed as may-have-been-sent unless the job resends in-flight chunks; the
rest (surely unsent) is sent. A list given whole is checked against the
journal before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from . import _errors
from ._endpoints import answer_int
from ._errors import ChunkCancelled, JournalMismatch, MalformedAnswer, NimError
from ._journal import ChunkRecord, chunk_digest
from ._results import ChunkOutcome, FailedChunk, SentChunk

__all__ = ["check_against", "parse_unregister", "read_answer", "record_of", "replayed"]

Answer = dict[str, Any]


def parse_unregister(value: object) -> list[str]:
    """Read ``unregister`` in both of the server's shapes.

    NetEase's 消息功能 page shows both a JSON array and a JSON-encoded string
    holding one.
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


def read_answer(chunk: list[str], answer: Answer, action: str) -> ChunkOutcome:
    """Read one chunk's answer now, so that a malformed one fails only its own chunk.

    An answer that contradicts its request (accids it did not carry) cannot be
    trusted to say who was reached: the chunk fails, as may-have-been-sent.
    """
    try:
        msgids = {
            str(accid): answer_int(msgid) for accid, msgid in (answer.get("msgids") or {}).items()
        }
        unregister = parse_unregister(answer.get("unregister"))
        timetag = None if answer.get("timetag") is None else answer_int(answer["timetag"])
    except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        # The server took the call and answered 200: the chunk may have gone out.
        error = MalformedAnswer(200, f"malformed batch answer: {exc}", action)
        return FailedChunk(tuple(chunk), error)
    problem = _contradiction(chunk, unregister, msgids)
    if problem is not None:
        return FailedChunk(tuple(chunk), MalformedAnswer(200, problem, action))
    return SentChunk(len(chunk), unregister, msgids, timetag)


def replayed(
    record: ChunkRecord, chunk: list[str], action: str, resend_in_flight: bool
) -> ChunkOutcome | None:
    """The outcome a resumed run places for a recorded chunk; None when it is to be sent."""
    outcome = record.outcome or {}
    if record.state == "sent":
        msgids = {str(accid): int(msgid) for accid, msgid in outcome["msgids"].items()}
        return SentChunk(len(chunk), list(outcome["unregister"]), msgids, outcome["timetag"])
    if record.state == "failed" and outcome.get("may_have_been_sent"):
        return FailedChunk(tuple(chunk), _rebuilt_error(outcome))
    if record.state == "sending" and not resend_in_flight:
        # In flight when the previous run stopped: the server may have it.
        error = ChunkCancelled(
            "in flight when the job's previous run stopped (per its journal)",
            action=action,
            may_have_reached_server=True,
        )
        return FailedChunk(tuple(chunk), error)
    return None  # surely unsent, or in flight and resend_in_flight: send it


def record_of(digest: str, outcome: ChunkOutcome, *, at: float | None = None) -> ChunkRecord:
    """What the journal keeps of a chunk's outcome: enough to place it again on resume.

    ``at``: when the outcome was known, in seconds since the epoch.
    """
    if isinstance(outcome, SentChunk):
        answer = {
            "unregister": outcome.unregister,
            "msgids": outcome.msgids,
            "timetag": outcome.timetag,
        }
        return ChunkRecord(digest, "sent", answer, at)
    error = outcome.error
    return ChunkRecord(
        digest,
        "failed",
        {
            "may_have_been_sent": outcome.may_have_been_sent,
            "type": type(error).__name__,
            "code": getattr(error, "code", None),
            "status": getattr(error, "status", None),
            "desc": getattr(error, "desc", None) or str(error),
            "action": getattr(error, "action", ""),
        },
        at,
    )


def _rebuilt_error(outcome: Mapping[str, Any]) -> NimError:
    """The error of a chunk that failed as may-have-been-sent, from its journal record."""
    kind = getattr(_errors, str(outcome.get("type")), None)
    code, desc, action = outcome.get("code"), str(outcome.get("desc")), str(outcome["action"])
    if isinstance(kind, type) and issubclass(kind, _errors.ServerError) and code is not None:
        return kind(int(code), desc, action, status=int(outcome.get("status") or 200))
    if isinstance(kind, type) and issubclass(kind, _errors.NimAPIError) and code is not None:
        return kind(int(code), desc, action)
    return _errors.NimConnectionError(desc, action=action, may_have_reached_server=True)


def check_against(
    records: Mapping[int, ChunkRecord], recipients: Collection[str], chunk_size: int
) -> None:
    """A list's chunks against the journal's, before anything is sent.

    Raises:
        JournalMismatch: A recorded chunk holds other recipients, or the list is shorter.
    """
    chunk: list[str] = []
    index = 0
    for accid in recipients:
        chunk.append(accid)
        if len(chunk) == chunk_size:
            _match(records, index, chunk)
            index, chunk = index + 1, []
    if chunk:
        _match(records, index, chunk)
        index += 1
    if max(records) >= index:
        raise JournalMismatch(
            "the journal records more chunks than the recipients make: it was made for "
            "another list; nothing was sent"
        )


def _match(records: Mapping[int, ChunkRecord], index: int, chunk: list[str]) -> None:
    record = records.get(index)
    if record is not None and record.digest != chunk_digest(chunk):
        raise JournalMismatch(
            f"chunk {index} holds other recipients than the journal recorded: it was made "
            "for another list; nothing was sent"
        )
