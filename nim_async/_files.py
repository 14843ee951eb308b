"""NimClient's file endpoints: msg/upload, msg/fileUpload, job/nos/del."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, Any, cast

from . import _actions as act
from ._forms import millis, wire
from ._pipeline import Answer, Endpoint, EndpointGroup, Upload
from ._validate import check_upload_size

__all__ = ["FileEndpoints"]

FileContent = bytes | str | os.PathLike[str] | IO[bytes]


def _url(answer: Answer) -> str:
    return str(answer["url"])


def _taskid(answer: Answer) -> str:
    return str((answer.get("data") or {})["taskid"])


# A repeated upload stores a second copy and nothing else: safe to retry.
_UPLOAD = Endpoint(act.UPLOAD, _url, idempotent=True)
_FILE_UPLOAD = Endpoint(act.FILE_UPLOAD, _url, idempotent=True)
# Each call creates a task, and the server caps tasks per day: not repeated.
_CLEAN_NOS = Endpoint(act.CLEAN_NOS, _taskid)


def _upload_fields(
    type: str | None, https: bool | None, expire_sec: int | None, tag: str | None
) -> dict[str, str | None]:
    return {"type": type, "ishttps": wire(https), "expireSec": wire(expire_sec), "tag": tag}


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


def _file_part(content: FileContent) -> tuple[Upload, int]:
    """Return the multipart part for ``content`` and its size, reading nothing yet."""
    if isinstance(content, bytes):
        return Upload("upload", lambda: nullcontext(io.BytesIO(content))), len(content)
    if isinstance(content, str | os.PathLike):
        path = os.fspath(content)

        def open_path() -> AbstractContextManager[IO[bytes]]:
            return open(path, "rb")

        return Upload(os.path.basename(path), open_path), os.stat(path).st_size
    name = os.path.basename(str(getattr(content, "name", "") or "upload"))
    if content.seekable():
        position = content.tell()
        size = content.seek(0, io.SEEK_END) - position
        content.seek(position)
        return Upload(name, lambda: _rewound(content, position)), size
    # A pipe or socket cannot be rewound: one attempt, and its size is unknown
    # until read, so the server's 15 MB check is the only one.
    return Upload(name, lambda: nullcontext(content), repeatable=False), 0


class FileEndpoints(EndpointGroup):
    """Files on NOS, NetEase's object store: upload, and clean up by date."""

    __slots__ = ()

    async def upload(
        self,
        content: bytes,
        *,
        type: str | None = None,
        https: bool | None = None,
        expire_sec: int | None = None,
        tag: str | None = None,
    ) -> str:
        """Upload a file as base64 in a form field (msg/upload) and return its URL.

        Args:
            content: The file's bytes, at most 15 MB.
            type: The file's type (``type``), e.g. ``"jpg"`` or ``"image/png"``.
            https: Return an https URL (``ishttps``; server default false).
            expire_sec: Seconds until the file expires, at least 86400 (``expireSec``).
            tag: The file's use, at most 32 characters (``tag``); used by
                :meth:`clean_nos_files`.

        Returns:
            The file's URL.

        Raises:
            InvalidRequest: Over 15 MB, or a parameter breaks its limit; nothing was sent.
            NimAPIError: An error answer.
        """
        check_upload_size(len(content))
        form = {
            "content": base64.b64encode(content).decode("ascii"),
            **_upload_fields(type, https, expire_sec, tag),
        }
        return await self._pipe().call(_UPLOAD, form)

    async def file_upload(
        self,
        content: FileContent,
        *,
        type: str | None = None,
        https: bool | None = None,
        expire_sec: int | None = None,
        tag: str | None = None,
    ) -> str:
        """Upload a file as multipart form data (msg/fileUpload) and return its URL.

        The file is streamed, not read into memory; a seekable file object is
        rewound to where it was for a retry.

        Args:
            content: Bytes, a path, or a binary file object, at most 15 MB.
            type: The file's type (``type``).
            https: Return an https URL (``ishttps``).
            expire_sec: Seconds until the file expires, at least 86400 (``expireSec``).
            tag: The file's use, at most 32 characters (``tag``).

        Returns:
            The file's URL.

        Raises:
            InvalidRequest: Over 15 MB, or a parameter breaks its limit; nothing was sent.
            OSError: The path cannot be read.
            NimAPIError: An error answer.
        """
        part, size = _file_part(content)
        check_upload_size(size)
        form = _upload_fields(type, https, expire_sec, tag)
        return await self._pipe().call(_FILE_UPLOAD, form, upload=part)

    async def clean_nos_files(
        self,
        start: dt.datetime | int,
        end: dt.datetime | int,
        *,
        content_type: str | None = None,
        tag: str | None = None,
    ) -> str:
        """Ask the server to delete uploaded files from a time range (job/nos/del).

        The seed's rules: ``start < end``, the span between 1 and 7 days, and
        ``end`` before today (China time). The server limits tasks per day.

        Args:
            start: The range's start: a datetime (naive means local time) or
                epoch milliseconds (``startTime``).
            end: The range's end, likewise (``endTime``).
            content_type: Delete files whose type contains this, e.g. ``"image"``
                (``contentType``).
            tag: Delete files uploaded with exactly this tag (``tag``).

        Returns:
            The clean-up task's id.

        Raises:
            InvalidRequest: The range breaks a rule; nothing was sent.
            NimAPIError: An error answer.
        """
        form = {
            "startTime": millis(start),
            "endTime": millis(end),
            "contentType": content_type,
            "tag": tag,
        }
        return await self._pipe().call(_CLEAN_NOS, form)
