"""The default transport over real sockets: TLS verification, proxies from the environment,
per-phase deadlines, the pool's bound, host failover, and the truth of every failure."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
import trustme

import nim_async as nim
from nim_async._transport import translated_aiohttp_error
from nim_async._wire import environment_proxies
from nim_async.testing import NimEmulator

from ._hostile import Piece, hostile_server, http_answer
from ._support import Wire, free_port, make_client

pytestmark = pytest.mark.anyio

SENT = http_answer(b'{"code":200,"data":{"msgid":7,"timetag":8,"antispam":false}}')
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy variables it is about, and no others."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def server_context(authority: trustme.CA, *hosts: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(*hosts).configure_cert(context)
    return context


def trusting(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


@contextlib.contextmanager
def recording(answer: list[Piece], *, tls: ssl.SSLContext | None = None) -> Iterator[Any]:
    """A hostile server that gives ``answer`` and records each request's headers and path."""
    requests: list[tuple[str, bytes]] = []

    def script(path: str, body: bytes) -> list[Piece]:
        requests.append((path, body))
        return answer

    with hostile_server(script, tls=tls) as url:
        yield url, requests


# ---- TLS ------------------------------------------------------------------------------


async def test_a_certificate_no_authority_vouches_for_is_refused_before_anything_is_sent(
    authority: trustme.CA,
) -> None:
    """certifi's authorities do not know the test CA: the handshake fails, nothing is sent."""
    with recording(SENT, tls=server_context(authority, "127.0.0.1")) as (url, requests):
        async with make_client(base_url=url) as client:
            with pytest.raises(nim.NimConnectionError) as caught:
                await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.may_have_reached_server is False
    assert "certificate" in str(caught.value).lower()
    assert requests == []


async def test_a_trusted_certificate_is_accepted(authority: trustme.CA) -> None:
    with recording(SENT, tls=server_context(authority, "127.0.0.1")) as (url, requests):
        async with make_client(base_url=url, verify=trusting(authority)) as client:
            sent = await client.send_msg("alice", "bob", nim.Text("hi"))
    assert (sent.msgid, sent.timetag) == (7, 8)
    assert [path for path, _ in requests] == ["/nimserver/msg/sendMsg.action"]


async def test_ssl_cert_file_is_honoured_as_httpx_honours_it(
    authority: trustme.CA, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default context reads SSL_CERT_FILE, as httpx.create_ssl_context does."""
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with recording(SENT, tls=server_context(authority, "127.0.0.1")) as (url, requests):
        async with make_client(base_url=url) as client:
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert len(requests) == 1


async def test_a_certificate_for_another_host_is_refused(authority: trustme.CA) -> None:
    """Trusted authority, wrong name: hostname checking is on."""
    with recording(SENT, tls=server_context(authority, "other.example")) as (url, requests):
        async with make_client(base_url=url, verify=trusting(authority)) as client:
            with pytest.raises(nim.NimConnectionError) as caught:
                await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.may_have_reached_server is False
    assert requests == []


def test_verify_takes_a_tls_context_for_the_default_transport_only() -> None:
    with pytest.raises(nim.ConfigurationError, match="verify"):
        nim.NimClient("k", "s", verify=False)  # type: ignore[arg-type]
    with pytest.raises(nim.ConfigurationError, match="verify"):
        nim.NimClient(
            "k", "s", verify=ssl.create_default_context(), transport=httpx.AsyncHTTPTransport()
        )


# ---- proxies --------------------------------------------------------------------------


class ForwardProxy:
    """An HTTP proxy on loopback: absolute-form requests are forwarded, CONNECT is tunnelled.

    ``seen`` holds each request line it was given.
    """

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> ForwardProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            piece = conn.recv(65536)
            if not piece:
                conn.close()
                return
            head += piece
        line, _, rest = head.partition(b"\r\n")
        method, target, version = line.decode().split(" ")
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            leftover = rest.partition(b"\r\n\r\n")[2]
        else:
            url = httpx.URL(target)
            upstream = socket.create_connection((url.host, url.port or 80))
            path = url.raw_path.decode()
            leftover = f"{method} {path} {version}\r\n".encode() + rest
        if leftover:
            upstream.sendall(leftover)
        threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
        _pipe(conn, upstream)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while piece := source.recv(65536):
            target.sendall(piece)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_an_http_proxy_from_the_environment_carries_the_call(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recording(SENT) as (url, requests), ForwardProxy() as proxy:
        monkeypatch.setenv(variable, proxy.url)
        async with make_client(base_url=url) as client:
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert proxy.seen == [f"POST {url}msg/sendMsg.action"]
    assert len(requests) == 1


async def test_no_proxy_sends_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    with recording(SENT) as (url, requests), ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
        async with make_client(base_url=url) as client:
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert proxy.seen == []
    assert len(requests) == 1


async def test_https_goes_through_a_tunnel_and_still_checks_the_certificate(
    authority: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = server_context(authority, "127.0.0.1")
    with recording(SENT, tls=tls) as (url, requests), ForwardProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with make_client(base_url=url, verify=trusting(authority)) as client:
            await client.send_msg("alice", "bob", nim.Text("hi"))
        once = nim.RetryPolicy(max_attempts=1)
        async with make_client(base_url=url, retry=once) as untrusting:
            with pytest.raises(nim.NimConnectionError) as caught:
                await untrusting.send_msg("alice", "bob", nim.Text("hi"))
    port = httpx.URL(url).port
    assert proxy.seen == [f"CONNECT 127.0.0.1:{port}"] * 2
    assert len(requests) == 1
    assert caught.value.may_have_reached_server is False


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"HTTP_PROXY": "proxy:3128"},
        {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"},
        {"ALL_PROXY": "socks5://p:1080", "NO_PROXY": "localhost,.internal,10.0.0.0/8,::1,x.com"},
        {"HTTP_PROXY": "http://p:1", "NO_PROXY": "http://only.this:8080, ,internal"},
    ],
)
def test_the_environment_is_read_as_httpx_reads_it(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from httpx._utils import get_environment_proxies

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert environment_proxies() == get_environment_proxies()


@pytest.mark.parametrize(
    ("no_proxy", "host", "proxied"),
    [
        (".example.com", "api.example.com", False),
        (".example.com", "example.com", True),
        ("example.com", "example.com", False),
        ("example.com", "myexample.com", True),
        ("127.0.0.1", "127.0.0.1", False),
        ("localhost", "127.0.0.1", True),
    ],
)
def test_routes_match_hosts_as_httpx_mounts_do(
    no_proxy: str, host: str, proxied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    client = nim.NimClient("k", "s", base_url=f"https://{host}/nimserver/")
    wire = client._wire
    chosen = wire.transport_for(httpx.URL(f"https://{host}/nimserver/msg/sendMsg.action"))
    assert (chosen is not wire.transport) is proxied
    assert isinstance(chosen, httpx.AsyncHTTPTransport) is proxied


def test_an_unusable_proxy_in_the_environment_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "ftp://proxy:21")
    with pytest.raises(nim.ConfigurationError, match="HTTPS_PROXY"):
        nim.NimClient("k", "s")


# ---- deadlines, the pool, failover, the truth of failures ------------------------------


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A port whose accept queue is full: connecting hangs until the connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(listener.getsockname())
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/nimserver/"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_connect_timeout_never_reached_the_server_and_the_next_host_is_tried(
    wire: Wire, emulator: NimEmulator
) -> None:
    timeout = httpx.Timeout(5.0, connect=0.2)
    with black_hole() as hole, emulator.serve() as alive:
        async with make_client(**wire, base_url=hole, timeout=timeout) as client:
            with pytest.raises(nim.NimTimeout) as caught:
                await client.send_attach_msg("alice", "bob", "x")
        async with make_client(**wire, base_url=[hole, alive], timeout=timeout) as client:
            await client.send_attach_msg("alice", "bob", "x")
            assert str(client.base_url) == alive
    assert caught.value.may_have_reached_server is False
    assert [call.action for call in emulator.calls] == ["msg/sendAttachMsg"]


async def test_a_refused_host_is_passed_over(wire: Wire, emulator: NimEmulator) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nimserver/"
    with emulator.serve() as alive:
        async with make_client(**wire, base_url=[dead, alive]) as client:
            await client.send_msg("alice", "bob", nim.Text("one"))
            assert str(client.base_url) == alive
    assert len(emulator.calls) == 1


async def test_no_more_connections_than_max_connections(wire: Wire, emulator: NimEmulator) -> None:
    """Forty calls at once through three connections: the server never sees a fourth."""
    emulator.set_latency(0.05, "msg/sendMsg")
    open_now: set[tuple[str, int]] = set()
    most = 0
    peers: set[tuple[str, int]] = set()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal most
        if scope["type"] != "http":
            return await emulator.app(scope, receive, send)
        peer = scope["client"]
        peers.add(peer)
        open_now.add(peer)
        most = max(most, len(open_now))
        try:
            await emulator.app(scope, receive, send)
        finally:
            open_now.discard(peer)
        return None

    from nim_async.testing._server import serve_in_thread

    with serve_in_thread(app) as url:
        async with (
            make_client(**wire, base_url=url, max_connections=3) as client,
            anyio.create_task_group() as group,
        ):
            for number in range(40):
                group.start_soon(client.send_msg, "alice", f"u{number}", nim.Text("hi"))
    assert most <= 3
    assert len(peers) <= 3
    assert len(emulator.messages) == 40


# The server read the request whole, then answered with these pieces and hung up.
AFTER_THE_REQUEST: dict[str, list[Piece]] = {
    "hangs up without answering": [],
    "hangs up mid-headers": [(b"HTTP/1.1 200 OK\r\nContent-Le", 0.0)],
    "hangs up mid-body": [(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{", 0.0)],
    "a status line that is not HTTP": [(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", 0.0)],
}


@pytest.mark.parametrize("name", sorted(AFTER_THE_REQUEST))
async def test_every_failure_after_the_request_was_read_may_have_reached_the_server(
    wire: Wire, name: str
) -> None:
    with recording(AFTER_THE_REQUEST[name]) as (url, requests):
        async with make_client(**wire, base_url=url) as client:
            with pytest.raises(nim.NimConnectionError) as caught:
                await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.may_have_reached_server is True
    assert len(requests) == 1, "a send that may have arrived is never repeated"


async def test_the_request_arrives_as_nim_reads_it(wire: Wire) -> None:
    """Signed headers, the form, and a UTF-8 body, whatever the transport."""
    raw: list[bytes] = []

    def script(path: str, body: bytes) -> list[Piece]:
        raw.append(body)
        return SENT

    with hostile_server(script) as url:
        async with make_client(**wire, base_url=url) as client:
            await client.send_msg("alice", "bob", nim.Text("你好 & ="))
    (body,) = raw
    form = dict(httpx.QueryParams(body.decode()))
    assert form["from"] == "alice"
    assert json.loads(form["body"]) == {"msg": "你好 & ="}


@pytest.mark.parametrize(
    ("error", "translated"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ServerFingerprintMismatch(b"a", b"b", "h", 443), httpx.ConnectError),
        (aiohttp.InvalidURL("x"), httpx.UnsupportedProtocol),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpx.RemoteProtocolError),
        (aiohttp.ClientConnectionResetError("reset"), httpx.ReadError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (ConnectionResetError(104, "reset"), httpx.ReadError),
    ],
)
def test_each_aiohttp_error_keeps_its_truth(
    error: BaseException, translated: type[httpx.TransportError]
) -> None:
    """Only a failure to connect says "not sent"."""
    from nim_async._http import _translated

    result = translated_aiohttp_error(error)
    assert type(result) is translated
    sent = _translated(result, "msg/sendMsg")
    assert isinstance(sent, nim.NimConnectionError)
    assert sent.may_have_reached_server is not isinstance(
        result, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol
    )


async def test_uploads_stream_whole_over_either_transport(
    wire: Wire, emulator: NimEmulator, tmp_path: Any
) -> None:
    """A form value streamed in pieces, a multipart body from bytes and from a file:
    the server stores exactly the bytes sent."""
    big = bytes(range(256)) * 4096  # 1 MB: base64 over the form's streaming threshold
    path = tmp_path / "report.bin"
    path.write_bytes(big[::-1])
    with emulator.serve() as url:
        async with make_client(**wire, base_url=url) as client:
            urls = [
                await client.upload(big),
                await client.file_upload(big[:300_000], type="file"),
                await client.file_upload(path),
            ]
    stored = {upload.url: upload.content for upload in emulator.uploads.values()}
    assert [stored[one] for one in urls] == [big, big[:300_000], big[::-1]]
