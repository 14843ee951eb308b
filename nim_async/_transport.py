"""The default transport: httpx's interface over aiohttp's connection pool.

httpx stays what the client speaks (requests, responses, timeouts, any
``httpx.AsyncBaseTransport`` in its place), but httpcore's pool costs several
times aiohttp's CPU per call over real sockets, and the gap grows with the
calls in flight (its pool looks at every connection at every event). aiohttp's
pool is made for many concurrent calls, so the default transport hands each
request to it.

Every aiohttp error leaves this module as the httpx error that tells the truth
about whether the request may have been sent: a failure to connect (refused,
DNS, TLS, a connect timeout) is ``httpx.ConnectError`` or
``httpx.ConnectTimeout``; anything after the connection was made (a reset, a
disconnect, a read timeout, a broken answer) is an error the client reports as
"may have reached the server".
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx
import yarl

__all__ = ["KEEPALIVE_EXPIRY", "AiohttpTransport", "FormRequest", "translated_aiohttp_error"]

# httpx's default: a connection idle this long is closed, not reused.
KEEPALIVE_EXPIRY = 5.0
_READ_PIECE = 64 * 1024
_HTTP_11 = b"HTTP/1.1"
_HTTP_10 = b"HTTP/1.0"
_MAX_URLS = 1024


def translated_aiohttp_error(exc: BaseException) -> httpx.TransportError:
    """aiohttp's error as the httpx error with the same truth about what was sent.

    The order matters: aiohttp's connect errors are ``OSError`` and
    ``ClientConnectionError`` subclasses too, and its timeouts are both
    ``asyncio.TimeoutError`` and connection errors.
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # The connect phase (DNS, TCP, TLS) ran out: nothing was written.
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerFingerprintMismatch):
        # Refused, unresolvable, or a certificate that failed verification.
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientResponseError):
        # An answer aiohttp could not parse (a bad status line or headers).
        return httpx.RemoteProtocolError(message)
    # A reset or another socket error once connected: the request may have
    # been received whole and carried out.
    return httpx.ReadError(message)


class FormRequest(httpx.Request):
    """A POST of a ready body whose ``httpx.Headers`` are built only if something reads them.

    httpx.Request's own constructor copies the URL, normalises the headers,
    and looks for a body to encode and headers to add: all done already here,
    where the headers are complete. The default transport hands
    ``text_headers`` to aiohttp as they are (aiohttp takes text), so for it
    the ``httpx.Headers`` are never built; any other transport reads
    ``headers`` as from any request. The URL stays the very object given, so
    the transports can remember what they derive from it.

    Args:
        url: Where the request goes.
        text_headers: Every header, Host and Content-Length included.
        body: The body.
        extensions: httpx's request extensions (``timeout``).
    """

    def __init__(
        self,
        url: httpx.URL,
        text_headers: list[tuple[str, str]],
        body: bytes,
        extensions: dict[str, Any],
    ) -> None:
        self.method = "POST"
        self.url = url
        self.text_headers = text_headers
        self._built: httpx.Headers | None = None
        self.extensions = extensions
        self.stream = httpx.ByteStream(body)
        self.read()  # the bytes as request.content, for transports that read them so

    @property
    def headers(self) -> httpx.Headers:
        """The headers, as httpx.Request has them."""
        if self._built is None:
            # UTF-8, as aiohttp writes text headers (httpx would refuse non-ASCII text).
            pairs = [(name.encode(), value.encode()) for name, value in self.text_headers]
            self._built = httpx.Headers(pairs)
        return self._built

    @headers.setter
    def headers(self, value: httpx.Headers) -> None:
        self._built = httpx.Headers(value)


class _AnswerStream(httpx.AsyncByteStream):
    """The body of an aiohttp response, read as httpx reads a stream."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        length = self._response.content_length
        if length is not None and length <= _READ_PIECE:
            # A NIM answer: one read, and no async generator for the event
            # loop to track and finalise.
            return _OneRead(self._response)
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._response.content.iter_chunked(_READ_PIECE):
                yield piece
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise translated_aiohttp_error(exc) from exc

    async def aclose(self) -> None:
        # Back to the pool if the body was read whole; closed otherwise.
        self._response.release()


class _OneRead:
    """A body of known, small length as an iterator of one piece."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response: aiohttp.ClientResponse | None = response

    def __aiter__(self) -> _OneRead:
        return self

    async def __anext__(self) -> bytes:
        response, self._response = self._response, None
        if response is None:
            raise StopAsyncIteration
        try:
            return await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise translated_aiohttp_error(exc) from exc


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends over one ``aiohttp.ClientSession``.

    The session (and its pool of at most ``max_connections`` connections) is
    opened by the first request, in the event loop that sends it. Redirects
    are not followed, cookies are not kept, and bodies are passed on as sent
    (httpx decodes ``Content-Encoding``). httpx's ``connect`` timeout bounds
    the whole connect (DNS, TCP and TLS), ``read`` each wait for the answer's
    bytes; aiohttp has no write timeout, so a request's total deadline bounds
    its writing.

    Args:
        verify: The TLS context that checks the server's certificate. None:
            httpx's defaults (certifi's authorities, or ``SSL_CERT_FILE`` /
            ``SSL_CERT_DIR``), loaded when the session opens.
        max_connections: The most connections open at once.
        keepalive_expiry: Seconds an idle connection is kept for reuse.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | None,
        max_connections: int,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        self._ssl = verify
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._closed = False
        # By identity: the client's requests carry the URL objects it keeps per action.
        self._urls: dict[int, tuple[httpx.URL, yarl.URL]] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the transport is closed")
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            # Loading the authorities takes tens of milliseconds: not at construction.
            ssl=self._ssl if self._ssl is not None else httpx.create_ssl_context(),
            keepalive_timeout=self._keepalive_expiry,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
            requote_redirect_url=False,
        )
        return self._session

    def _url(self, url: httpx.URL) -> yarl.URL:
        # A client sends to a few dozen URLs: each is parsed once.
        known = self._urls.get(id(url))
        if known is None or known[0] is not url:
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()  # someone else's URLs, each new: start afresh
            known = self._urls[id(url)] = (url, yarl.URL(str(url), encoded=True))
        return known[1]

    def _timeout(self, phases: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        connect, read = phases.get("connect"), phases.get("read")
        timeout = self._timeouts.get((connect, read))
        if timeout is None:
            # aiohttp's `connect` covers DNS, TCP and TLS (and a pool wait,
            # which the client never lets happen: it admits at most
            # max_connections requests at once).
            timeout = aiohttp.ClientTimeout(
                total=None, connect=connect, sock_connect=connect, sock_read=read
            )
            self._timeouts[(connect, read)] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            data = request.stream  # a streamed form or a multipart upload
        headers: list[tuple[str, str]]
        if isinstance(request, FormRequest) and request._built is None:
            headers = request.text_headers  # nobody has changed them: a plain form
        else:
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in request.headers.raw
                # aiohttp frames a body of unknown length itself.
                if name.lower() != b"transfer-encoding"
            ]
        try:
            response = await session.request(
                request.method,
                self._url(request.url),
                headers=headers,
                data=data,
                allow_redirects=False,
                compress=None,
                timeout=self._timeout(request.extensions.get("timeout", {})),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise translated_aiohttp_error(exc) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_AnswerStream(response),
            request=request,
            extensions={
                "http_version": _HTTP_11 if response.version == (1, 1) else _HTTP_10,
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
