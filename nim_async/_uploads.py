"""The multipart file part of msg/fileUpload: bytes, a path or a binary file, never read whole."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, Any, cast

import attrs

__all__ = ["FileContent", "Upload", "file_part"]

# What file_upload takes: the bytes, a path, or a binary file object.
FileContent = bytes | str | os.PathLike[str] | IO[bytes]


@attrs.frozen
class Upload:
    """A multipart file part.

    Args:
        filename: The part's file name.
        open: Gives the stream to send, positioned at its start, for each attempt.
        size: Its size in bytes; None when it cannot be known before reading (a pipe).
        repeatable: False for a stream that cannot be rewound: one attempt only.
    """

    filename: str
    open: Callable[[], AbstractContextManager[IO[bytes]]]
    size: int | None
    repeatable: bool = True


class _FromPosition(io.RawIOBase):
    """The caller's file seen from ``start`` on: its offset 0 is their position.

    httpx's multipart writer seeks to 0 before reading; without this view it
    would send the bytes before the caller's position too.
    """

    def __init__(self, raw: IO[bytes], start: int) -> None:
        super().__init__()
        self._raw = raw
        self._start = start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            offset += self._start
        return self._raw.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._raw.tell() - self._start

    def close(self) -> None:
        # The caller's file stays open: it is theirs to close.
        super().close()


@contextmanager
def _rewound(stream: IO[bytes], position: int) -> Iterator[IO[bytes]]:
    stream.seek(position)
    with _FromPosition(stream, position) as view:
        yield cast(IO[bytes], view)


def file_part(content: object) -> Upload | None:
    """Return the part for ``content``, reading nothing yet; None if it is none of the three.

    Raises:
        OSError: A path that is not a readable regular file.
        ValueError: A path with a NUL, a closed file object.
    """
    if isinstance(content, bytes):
        data = content
        return Upload("upload", lambda: nullcontext(io.BytesIO(data)), len(data))
    if isinstance(content, str | os.PathLike):
        path = os.fspath(content)
        if not isinstance(path, str):
            return None

        def open_path() -> AbstractContextManager[IO[bytes]]:
            return open(path, "rb")

        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            raise IsADirectoryError(f"{path!r} is not a regular file")
        with open(path, "rb"):
            pass  # readable now, or OSError before the limiter is touched
        return Upload(os.path.basename(path), open_path, status.st_size)
    if isinstance(content, io.TextIOBase) or not isinstance(content, io.IOBase | IO):
        return None  # a text-mode file would hand httpx str, not bytes
    if getattr(content, "closed", False):
        raise ValueError("the file object is closed")
    stream = cast(IO[bytes], content)
    name = os.path.basename(str(getattr(stream, "name", "") or "upload"))
    if stream.seekable():
        position = stream.tell()
        size = stream.seek(0, io.SEEK_END) - position
        stream.seek(position)
        return Upload(name, lambda: _rewound(stream, position), size)
    # A pipe or socket cannot be rewound: one attempt, and its size is unknown
    # until read, so the server's 15 MB check is the only one.
    return Upload(name, lambda: nullcontext(stream), None, repeatable=False)
