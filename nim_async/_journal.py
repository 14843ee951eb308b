"""Journals: a bulk job's record on disk or in Redis, so that it outlives its process.

A journal holds one record per chunk, keyed by the chunk's index in the input:
a digest of its accids, its state, when it was written and, once known, its
outcome. A chunk is written as ``sending`` before its request goes out and as
``sent`` or ``failed`` when its outcome is known, so after any crash the
journal tells which chunks were done, which surely were not, and which were in
flight. The journal grows with chunks, not with a copy of every accid (unless
msg ids were asked for: they are the outcome).

A journal is the job's only memory, so it is read whole or not at all: a record
that cannot be read, or a count of records that does not match the count
written, refuses the journal (``JournalUnavailable``) before anything is sent.
One runner at a time holds it (``JournalLocked`` for the second).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs
import httpx

from ._errors import JournalMismatch, JournalUnavailable

__all__ = [
    "ChunkRecord",
    "Journal",
    "chunk_digest",
    "job_fingerprint",
    "read_records",
    "refuse_mismatch",
    "service_of",
]

State = Literal["sending", "sent", "failed"]
_STATES = ("sending", "sent", "failed")


@attrs.frozen
class ChunkRecord:
    """What a journal knows of one chunk.

    Attributes:
        digest: A digest of the chunk's accids, in order (resuming must read the same).
        state: ``sending`` (its request may have gone out), ``sent`` or ``failed``.
        outcome: The answer read (``sent``) or the error (``failed``), as JSON-able data.
        at: When the record was written (seconds since the epoch): for ``sending``
            when the request went out, else when its outcome was known. A
            resumed job counts these calls in the rate windows they fall in.
        hold: For ``sending``: the longest the request could take (its
            deadline), so that a later run, whatever its own timeout, knows
            when the request can no longer arrive.
    """

    digest: str
    state: State
    outcome: dict[str, Any] | None = None
    at: float | None = None
    hold: float | None = None

    def to_json(self) -> str:
        """The record as one JSON text."""
        data = {"d": self.digest, "s": self.state, "o": self.outcome, "t": self.at}
        if self.hold is not None:
            data["h"] = self.hold
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> ChunkRecord:
        """Read a record written by `to_json`.

        Raises:
            ValueError: The text is not such a record (it says what is wrong).
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__} where a record belongs")
        digest, state, outcome = data.get("d"), data.get("s"), data.get("o")
        at, hold = data.get("t"), data.get("h")
        if not isinstance(digest, str) or len(digest) != 32:
            raise ValueError(f"no chunk digest (got {digest!r:.40})")
        if state not in _STATES:
            raise ValueError(f"an unknown state {state!r:.40}")
        for time in (at, hold):
            if time is not None and (not isinstance(time, int | float) or not math.isfinite(time)):
                raise ValueError(f"a time that is not a number ({time!r:.40})")
        _check_outcome(state, outcome)
        return cls(
            digest,
            state,
            outcome,
            None if at is None else float(at),
            None if hold is None else float(hold),
        )


def _check_outcome(state: str, outcome: object) -> None:
    """Refuse an outcome a resume could not place: every field it reads must be there."""
    if state == "sending":
        if outcome is not None:
            raise ValueError("a chunk in flight with an outcome")
        return
    if not isinstance(outcome, dict):
        raise ValueError(f"a {state} chunk without its outcome")
    if state == "sent":
        msgids, unregister, timetag = (
            outcome.get("msgids"),
            outcome.get("unregister"),
            outcome.get("timetag"),
        )
        if not isinstance(msgids, dict) or not all(
            isinstance(msgid, int) and not isinstance(msgid, bool) for msgid in msgids.values()
        ):
            raise ValueError("a sent chunk whose msgids are not a map of accid to number")
        if not isinstance(unregister, list) or not all(isinstance(a, str) for a in unregister):
            raise ValueError("a sent chunk whose unregister is not a list of accids")
        if timetag is not None and (not isinstance(timetag, int) or isinstance(timetag, bool)):
            raise ValueError("a sent chunk whose timetag is not a number")
    elif not isinstance(outcome.get("may_have_been_sent"), bool) or not isinstance(
        outcome.get("action"), str
    ):
        raise ValueError("a failed chunk that does not say whether it may have been sent")


def read_records(
    rows: Iterable[tuple[object, object]], where: str, expected: int | None
) -> dict[int, ChunkRecord]:
    """Read a journal's rows (index, record text) whole, or refuse the journal.

    Args:
        rows: What the store holds, as it holds it (bytes or str from Redis).
        where: The journal's name for the message (a file or a key).
        expected: How many records the journal says it wrote; None when it cannot tell.

    Raises:
        JournalUnavailable: A record cannot be read, or records are missing.
    """
    records: dict[int, ChunkRecord] = {}
    for index, text in rows:
        name = index.decode("utf-8", "backslashreplace") if isinstance(index, bytes) else index
        name = str(name)
        try:
            if not (name.isascii() and name.isdigit()):
                raise ValueError(f"a field {name[:40]!r} that is not a chunk index")
            records[int(name)] = ChunkRecord.from_json(text)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            raise JournalUnavailable(
                f"the journal {where} is damaged: chunk {name[:40]!r} holds {exc}; nothing "
                "was sent. Resuming from part of a journal could send its chunks twice: "
                "restore the journal, or settle the job by hand"
            ) from None
    if expected is not None and expected != len(records):
        raise JournalUnavailable(
            f"the journal {where} is damaged: it wrote {expected} chunk records and holds "
            f"{len(records)}; nothing was sent. Resuming from part of a journal could send "
            "its chunks twice: restore the journal, or settle the job by hand"
        )
    return records


def chunk_digest(accids: Iterable[str]) -> str:
    """A digest of a chunk's accids in order (16 bytes of SHA-256, hex)."""
    digest = hashlib.sha256()
    for accid in accids:
        digest.update(accid.encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()[:32]


# Hosts that answer for one NetEase data centre: a job journalled against one
# of them is the same job against another (NetEase's server SDKs fail over
# between them: Java SDK core/Constants.java, Go SDK src/core/base/constants.go).
_SERVICES = {
    "api.netease.im": "netease-cn",
    "api-sg.netease.im": "netease-sg",
    **{
        f"api-{centre}{suffix}.yunxinapi.com": f"netease-{centre}"
        for centre in ("cn", "sg")
        for suffix in ("", "-bak", "-01", "-02", "-03")
    },
}


def service_of(urls: Sequence[httpx.URL]) -> str:
    """The service a client's base URLs name: a NetEase data centre, or the hosts themselves."""
    names = sorted({_SERVICES.get(url.host, f"{url.host}:{url.port or ''}") for url in urls})
    return ",".join(names)


def job_fingerprint(
    action: str, form: dict[str, Any], chunk_size: int, *, app_key: str, service: str
) -> str:
    """What makes two runs the same job, as JSON text.

    The app key (never the secret) and the service it calls, and a digest of the
    action, every field but toAccids and the chunking: a journal written for
    one app or data centre says nothing of what another received.
    """
    text = json.dumps(
        [action, sorted((k, v) for k, v in form.items() if isinstance(v, str)), chunk_size]
    )
    job = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return json.dumps({"app_key": app_key, "service": service, "job": job}, sort_keys=True)


def refuse_mismatch(stored: str, wanted: str, where: str) -> None:
    """Compare the fingerprint a journal holds with the job's, naming what differs.

    Raises:
        JournalMismatch: They differ; nothing was sent.
    """
    if stored == wanted:
        return
    try:
        old, new = json.loads(stored), json.loads(wanted)
    except ValueError:
        old, new = None, None
    if not isinstance(old, dict) or not isinstance(new, dict):
        detail = "another job (or one written by an older nim_async)"
    elif old.get("app_key") != new.get("app_key"):
        detail = f"app key {old.get('app_key')!r}, not {new.get('app_key')!r}"
    elif old.get("service") != new.get("service"):
        detail = f"the service at {old.get('service')}, not {new.get('service')}"
    else:
        detail = "another job (another message, action or batch size)"
    raise JournalMismatch(
        f"the journal {where} records {detail}; nothing was sent. Use a new journal for a new job."
    )


@runtime_checkable
class Journal(Protocol):
    """Where a ``BatchJob`` keeps its record: ``SqliteJournal`` or ``RedisJournal``."""

    async def open(self, fingerprint: str) -> dict[int, ChunkRecord]:
        """Take the journal for this runner, start or resume the job ``fingerprint``, and
        return what is recorded, by chunk index.

        Raises:
            JournalLocked: Another runner holds the journal.
            JournalMismatch: The journal holds another job.
            JournalUnavailable: The journal cannot be read whole.
        """
        ...

    async def write(self, index: int, record: ChunkRecord) -> None:
        """Record chunk ``index`` durably before returning.

        Raises:
            JournalUnavailable: The record could not be written (``JournalLocked``:
                this runner no longer holds the journal).
        """
        ...

    async def aclose(self) -> None:
        """Release the journal (and the runner's hold on it)."""
        ...
