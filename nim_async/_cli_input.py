"""The recipients of ``nim-async batch``: read lazily from a file or standard input, one
accid per line or one CSV column, without duplicates unless asked; and the files a job
writes, checked against its inputs and written whole or not at all.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from ._cli_client import _Exit

__all__ = ["Recipients", "check_outputs", "write_whole"]


def _name(source: str) -> str:
    return "stdin" if source == "-" else source


class Recipients:
    """The accids of ``--to``, read as the job takes them.

    A byte order mark is dropped, from a file or standard input alike:
    spreadsheets write one before a CSV header. Blank lines and cells are
    skipped. A line holding a comma is CSV: NetEase's account rules allow
    letters, digits and ``_ @ . -`` in an accid, never a comma, so a first
    line with several cells needs ``--column``.

    Duplicates are dropped unless ``keep_duplicates``: every distinct accid
    read is kept in a set (about 100 bytes each, 100 MB for a million).

    A line that cannot be read mid-job (not UTF-8, not CSV, a cell over the
    CSV module's field limit) ends the recipients there; `bad` keeps the
    reason, for the job to stop as it does for any other cause.
    """

    def __init__(
        self,
        source: str,
        column: str | None,
        *,
        keep_duplicates: bool = False,
    ) -> None:
        self.source = source
        self._column = column
        self._seen: set[str] | None = None if keep_duplicates else set()
        self.duplicates = 0
        self.bad: str | None = None
        self._stream: TextIO | None = None
        self._rows: Iterator[str] | None = None
        self._abandoned = False

    def __enter__(self) -> Recipients:
        """Open the source and read its first line (the header, or a check for CSV).

        Raises:
            _Exit: It cannot be opened or read, it is CSV without ``--column``,
                the column is missing, or it is empty with ``--column``: status 2.
        """
        self._stream = self._open()
        try:
            self._rows = self._read(self._stream)
        except BaseException:
            self.__exit__()
            raise
        return self

    def abandon(self) -> None:
        """Leave the stream open at the end: a thread of ours is blocked reading it."""
        self._abandoned = True

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is None or self._abandoned:
            return
        if self.source != "-":
            self._stream.close()
        elif self._stream is not sys.stdin and isinstance(self._stream, io.TextIOWrapper):
            # Our decoding wrapper, not stdin's: closing it would close stdin.
            self._stream.detach()

    @property
    def is_stream(self) -> bool:
        """Standard input or a pipe: read once, and a read may wait on its writer."""
        return self.source == "-" or not Path(self.source).is_file()

    def __iter__(self) -> Iterator[str]:
        assert self._rows is not None, "use Recipients in a with block"
        return self._rows

    def _open(self) -> TextIO:
        if self.source == "-":
            # The same decoding as a file's (a BOM at the start is not an accid's),
            # whatever the locale says.
            buffer = getattr(sys.stdin, "buffer", None)
            if buffer is None:
                return sys.stdin
            return io.TextIOWrapper(buffer, encoding="utf-8-sig", newline="")
        try:
            return open(self.source, encoding="utf-8-sig", newline="")
        except OSError as error:
            raise _Exit(f"cannot read {self.source}: {error.strerror or error}") from None

    def _read(self, stream: TextIO) -> Iterator[str]:
        """Read the first line now (a wrong file stops the command before anything is sent)
        and return an iterator over the accids that reads the rest lazily."""
        rows = csv.reader(stream)
        try:
            first = next(rows, None)
            if first:
                first[0] = first[0].removeprefix("\ufeff")
        except (UnicodeDecodeError, csv.Error) as error:
            raise _Exit(f"cannot read {_name(self.source)}: line 1: {_reason(error)}") from None
        if self._column is not None:
            if first is None:
                raise _Exit(
                    f"{_name(self.source)} is empty: --column needs a CSV file with a header row"
                )
            names = [name.strip() for name in first]
            if self._column not in names:
                raise _Exit(
                    f"{_name(self.source)} has no column {self._column!r}: "
                    f"its first row is {_shown(names)}"
                )
            return self._accids(rows, names.index(self._column), ())
        if first is not None and len(first) > 1:
            raise _Exit(
                f"{_name(self.source)} is CSV (its first row is {_shown(first)}): "
                "name the column of accids with --column"
            )
        return self._accids(rows, 0, (first,) if first is not None else ())

    def _accids(self, rows: Any, at: int, first: Iterable[list[str]]) -> Iterator[str]:
        try:
            for row in _chain(first, rows):
                if self._column is None and len(row) > 1:
                    line = ",".join(row)
                    self._stop(f"line {rows.line_num}: {line[:80]!r} holds a comma")
                    return
                accid = row[at].strip() if len(row) > at else ""
                if not accid:
                    continue
                if self._seen is not None:
                    if accid in self._seen:
                        self.duplicates += 1
                        continue
                    self._seen.add(accid)
                yield accid
        except UnicodeDecodeError as error:
            # Text is decoded in blocks: the bad line is a later one.
            self._stop(f"after line {rows.line_num}: {_reason(error)}")
        except csv.Error as error:
            self._stop(f"line {rows.line_num}: {_reason(error)}")

    def _stop(self, reason: str) -> None:
        self.bad = f"{_name(self.source)}, {reason}; the lines after it were not read"


def _chain(first: Iterable[list[str]], rows: Iterator[list[str]]) -> Iterator[list[str]]:
    yield from first
    yield from rows


def _reason(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(error)


def _shown(cells: list[str]) -> str:
    shown = ", ".join(repr(cell) for cell in cells[:10])
    return shown + (", ..." if len(cells) > 10 else "")


def count(source: str, column: str | None, *, keep_duplicates: bool) -> int | None:
    """How many accids ``source`` holds, in a streaming pass of its own; None for stdin
    or a pipe (they can be read once only: they are the job's).

    The pass also finds a file that cannot be read before anything is sent.

    Raises:
        _Exit: As `Recipients`, and for a line that cannot be read (status 2).
    """
    if source == "-" or not Path(source).is_file():
        return None
    with Recipients(source, column, keep_duplicates=keep_duplicates) as recipients:
        found = sum(1 for _ in recipients)
    if recipients.bad is not None:
        raise _Exit(f"cannot read {recipients.bad}; nothing was sent")
    return found


# --- the files a job writes --------------------------------------------------


def _same(one: str, other: str) -> bool:
    if os.path.realpath(one) == os.path.realpath(other):
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(one, other)
    return False


def check_outputs(outputs: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """Refuse an output file that is an input file, or another output, before anything is sent.

    Writing ``--failed-to`` over ``--to`` while the rest of it is still being
    read would lose the recipients not yet read.

    Raises:
        _Exit: Two of the files are one (status 2).
    """
    named = [(flag, path) for flag, path in outputs.items() if path is not None]
    files = [(flag, path) for flag, path in inputs.items() if path not in (None, "-")]
    for at, (flag, path) in enumerate(named):
        for other_flag, other in [*files, *named[:at]]:
            assert other is not None
            if _same(path, other):
                raise _Exit(
                    f"{flag} {path} is the file of {other_flag}: choose another file "
                    "(the job writes it at its end, whole)"
                )


def write_whole(path: str, lines: Iterable[str]) -> int:
    """Write ``lines`` to ``path``, one per line, whole or not at all; return how many.

    The lines go to a temporary file beside ``path``, which then replaces it:
    a job stopped or failing while it writes never leaves half a file.

    Raises:
        OSError: The file cannot be written (``path`` is left as it was).
    """
    target = Path(path)
    written = 0
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for line in lines:
                out.write(f"{line}\n")
                written += 1
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes it private (0600): give it the mode a plain open would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return written
