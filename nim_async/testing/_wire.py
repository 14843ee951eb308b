"""The emulator's view of one exchange: a decoded request and the answer to it.

The ASGI app (`_app`) turns HTTP into a `Request` and an `Answer` back into HTTP;
everything between works on these two plain values, with no web framework.
"""

from __future__ import annotations

import http
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Answer", "Request", "html_error", "nim_answer", "nim_error"]

# The "code" descriptions of NetEase's 状态码 (status codes) table, for injected faults.
CODE_TEXT: Mapping[int, str] = {
    403: "illegal operation or no permission",
    404: "object not found",
    414: "parameter error",
    416: "frequency control: the action is blocked for a while",
    417: "duplicate operation",
    431: "duplicate http request",
    500: "internal error",
    503: "server busy",
    508: "recall time limit exceeded",
    514: "service unavailable",
}


@attrs.frozen
class Request:
    """A request as the emulator sees it, decoded from HTTP by the app.

    Attributes:
        action: The path under ``/nimserver/`` without ``.action``.
        path: The path under ``/nimserver/`` as requested.
        method: The HTTP method.
        headers: The headers, names in lower case.
        media_type: The Content-Type without its parameters, lower case ("" if none).
        form: The form fields (multipart: the parts that are not files).
        files: The multipart file parts.
        host: The host (and port) the request was sent to, for the URLs of uploads.
        problem: Why the body could not be decoded, if it could not.
    """

    action: str
    path: str
    method: str
    headers: Mapping[str, str]
    media_type: str
    form: dict[str, str]
    files: dict[str, bytes] = attrs.field(factory=dict)
    host: str = "api.netease.im"
    problem: str | None = None


@attrs.frozen
class Answer:
    """An answer: a JSON body (a NIM answer) or the text of an HTML page (a gateway's).

    Attributes:
        status: The HTTP status.
        body: The JSON object, or the HTML text.
    """

    status: int
    body: dict[str, Any] | str

    @property
    def code(self) -> int | None:
        """The JSON ``code``, or ``None`` for an HTML answer."""
        return None if isinstance(self.body, str) else int(self.body["code"])

    @property
    def ok(self) -> bool:
        """Whether this is a NIM success (code 200)."""
        return self.code == 200


def nim_answer(**fields: Any) -> Answer:
    """A NIM success: HTTP 200 and ``{"code": 200, **fields}``."""
    return Answer(200, {"code": 200, **fields})


def nim_error(code: int, desc: str | None = None, *, status: int = 200) -> Answer:
    """A NIM error: HTTP 200 (NIM answers every call with 200) and ``{"code", "desc"}``."""
    return Answer(status, {"code": code, "desc": desc or CODE_TEXT.get(code, "error")})


def html_error(status: int) -> Answer:
    """What a gateway in front of NIM answers: HTTP 502/503/504 with an HTML body."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return Answer(status, f"<html><body><h1>{status} {phrase}</h1></body></html>")
