"""The ASGI app: HTTP in and out, and nothing else.

It decodes each request under ``/nimserver/`` into a `Request` (headers, form or
multipart body), hands it to the emulator, waits out the emulator's latency, and
writes the `Answer` back: JSON as ``application/json; charset=utf-8`` (every
answer example of NetEase's server API pages), or the HTML page of an injected
gateway failure.
``GET /nos/<id>`` serves uploaded files, and ``GET /emulator/state`` what the
emulator knows and stored, as JSON: outside ``/nimserver/``, so it is neither
a NIM action nor a recorded call, and it needs no signature. Every answer,
whatever its path, carries one ``Date`` header (RFC 7231) from the emulator's
clock, which may be skewed; uvicorn's own is turned off where it serves the app. A client that
disconnects is not an error: a cut-off body is a request that never arrived,
and a client gone during the latency leaves its call recorded and carried out,
unanswered.
This is the only module that imports Starlette (and python-multipart, for it);
the emulator imports it only when the app is first needed.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from email.utils import formatdate
from urllib.parse import parse_qsl

import anyio

try:
    # Starlette parses multipart bodies with python-multipart, imported only when the
    # first one arrives: imported here, a missing one is found when the app is built.
    import python_multipart  # noqa: F401
except ModuleNotFoundError:
    import multipart  # noqa: F401  (python-multipart before 0.0.13)
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HttpRequest
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._records import Upload
from ._rules import MAX_UPLOAD_BYTES
from ._wire import Answer, Request

__all__ = ["build_app"]

_SUFFIX = ".action"
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Starlette refuses multipart text parts over 1 MB by default; a "content" part
# sent without a filename may be as large as an upload.
_MAX_PART = MAX_UPLOAD_BYTES * 2


def _content_type(header: str) -> tuple[str, dict[str, str]]:
    media_type, *params = header.split(";")
    options = {}
    for param in params:
        name, _, value = param.partition("=")
        options[name.strip().lower()] = value.strip().strip('"')
    return media_type.strip().lower(), options


async def _urlencoded(request: HttpRequest, charset: str) -> tuple[dict[str, str], str | None]:
    # Parsed here rather than by Starlette, which caps each field at 1 MB (too
    # small for a 15 MB upload in base64) and reads raw bytes as latin-1.
    body = await request.body()
    try:
        text = body.decode(charset)
        pairs = parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict")
    except (LookupError, UnicodeDecodeError, ValueError):
        return {}, f"the form body is not valid {charset}"
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)  # the first of repeated fields, like a servlet's getParameter
    return form, None


async def _multipart(request: HttpRequest) -> tuple[dict[str, str], dict[str, bytes], str | None]:
    form: dict[str, str] = {}
    files: dict[str, bytes] = {}
    try:
        data = await request.form(max_part_size=_MAX_PART)
    except (HTTPException, ValueError) as exc:
        return form, files, f"the multipart body cannot be read: {getattr(exc, 'detail', exc)}"
    try:
        for name, value in data.multi_items():
            if isinstance(value, UploadFile):
                if name not in files:
                    files[name] = await value.read()
            else:
                form.setdefault(name, value)
    finally:
        await data.close()
    return form, files, None


async def _decode(request: HttpRequest) -> Request:
    path: str = request.path_params["path"]
    headers = {name.lower(): value for name, value in request.headers.items()}
    media_type, options = _content_type(headers.get("content-type", ""))
    form: dict[str, str] = {}
    files: dict[str, bytes] = {}
    problem = None
    if request.method == "POST":
        if not media_type and not await request.body():
            # No fields, no Content-Type (what httpx sends for an empty form): an
            # empty form, so the answer names the missing parameter.
            media_type = _FORM
        if media_type == _FORM:
            form, problem = await _urlencoded(request, options.get("charset") or "utf-8")
        elif media_type == _MULTIPART:
            form, files, problem = await _multipart(request)
    return Request(
        action=path.removesuffix(_SUFFIX),
        path=path,
        method=request.method,
        headers=headers,
        media_type=media_type,
        form=form,
        files=files,
        host=headers.get("host") or request.url.netloc,
        problem=problem,
    )


def _render(answer: Answer) -> Response:
    if isinstance(answer.body, str):
        return HTMLResponse(answer.body, status_code=answer.status)
    body = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
    return Response(body, answer.status, media_type="application/json; charset=utf-8")


async def _left_within(request: HttpRequest, seconds: float) -> bool:
    """Wait ``seconds``, or less: True as soon as the client disconnects."""
    if seconds <= 0:
        return False
    with anyio.move_on_after(seconds):
        # Once the body is read, the server's next message is the disconnect
        # (uvicorn), or nothing until the answer is sent (httpx in-process).
        while (await request.receive())["type"] != "http.disconnect":
            pass  # the rest of a body the route did not read
        return True
    return False


def _unanswered() -> Response:
    # For a client that has gone: the server drops whatever is sent to it.
    return PlainTextResponse("the client disconnected", status_code=400)


def _media_type(upload: Upload) -> str:
    kind = upload.type or ""
    if "/" in kind:
        return kind
    # A bare extension ("jpg") is a common `type`; guess its media type.
    guessed, _ = mimetypes.guess_type(f"file.{kind}") if kind else (None, None)
    return guessed or "application/octet-stream"


class _DateHeader:
    """ASGI middleware: one ``Date`` header, from ``clock``, on every HTTP answer."""

    def __init__(self, app: ASGIApp, clock: Callable[[], float]) -> None:
        self._app = app
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Stamped as the answer starts, after any latency, as a server does.
                date = formatdate(self._clock(), usegmt=True).encode("latin-1")
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", date)]}
            await send(message)

        await self._app(scope, receive, send_dated)


def build_app(
    handle: Callable[[Request], tuple[Answer, float]],
    download: Callable[[str], Upload | None],
    clock: Callable[[], float],
    state: Callable[[], bytes],
) -> ASGIApp:
    """Build the ASGI app.

    Args:
        handle: Answers one decoded NIM request (the emulator's pipeline), with the
            seconds to wait before sending the answer.
        download: Finds a live upload by id, or ``None``.
        clock: The service's clock, Unix seconds, for the ``Date`` header.
        state: The emulator's state as UTF-8 JSON, for ``/emulator/state``.

    Returns:
        An ASGI app with ``/nimserver/<action>.action``, ``/nos/<id>`` and
        ``/emulator/state``.
    """

    async def nim(request: HttpRequest) -> Response:
        try:
            decoded = await _decode(request)
        except ClientDisconnect:
            return _unanswered()
        answer, delay = handle(decoded)
        if await _left_within(request, delay):
            return _unanswered()
        return _render(answer)

    async def nos(request: HttpRequest) -> Response:
        upload = download(request.path_params["upload_id"])
        if upload is None:
            return PlainTextResponse("Not Found", status_code=404)
        return Response(upload.content, media_type=_media_type(upload))

    async def inspect(request: HttpRequest) -> Response:
        # In a worker thread: the JSON of a million deliveries takes a while to
        # encode, and the loop keeps answering NIM calls meanwhile (only the copy
        # of the records holds the emulator's lock).
        body = await anyio.to_thread.run_sync(state)
        return Response(
            body,
            media_type="application/json; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )

    routes = Starlette(
        routes=[
            Route("/nimserver/{path:path}", nim, methods=_METHODS),
            Route("/nos/{upload_id}", nos, methods=["GET", "HEAD"]),
            Route("/emulator/state", inspect, methods=["GET", "HEAD"]),
        ]
    )
    return _DateHeader(routes, clock)
