"""A small raw HTTP server for tests: it answers exactly the bytes a test scripts.

What no well-behaved server (the emulator included) would send: broken
``Content-Encoding``, JSON nested a hundred thousand deep, 50 MB answers,
answers dripped a byte at a time. One thread per connection, loopback only,
keep-alive off (every answer closes its connection).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["Piece", "Script", "hostile_server", "http_answer"]

# What to write, and how long to wait before writing it.
Piece = tuple[bytes, float]
# Gets the request's path and body; returns the pieces of the answer.
Script = Callable[[str, bytes], list[Piece]]


def http_answer(
    body: bytes, *, status: int = 200, headers: dict[str, str] | None = None
) -> list[Piece]:
    """One whole answer with Content-Length, written at once."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return [(("\r\n".join(lines) + "\r\n\r\n").encode() + body, 0.0)]


def _read_request(conn: socket.socket) -> tuple[str, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return "", b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return path, body


def _serve_one(
    conn: socket.socket, script: Script, stop: threading.Event, tls: ssl.SSLContext | None
) -> None:
    try:
        if tls is not None:
            # The handshake here, in the connection's own thread.
            conn = tls.wrap_socket(conn, server_side=True)
        path, body = _read_request(conn)
        if not path:
            return
        for data, delay in script(path, body):
            if stop.wait(delay):
                return
            conn.sendall(data)
    except OSError:
        return  # the client gave up (or refused the certificate): what some tests are about
    finally:
        conn.close()


@contextlib.contextmanager
def hostile_server(script: Script, *, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve ``script`` on a free loopback port; yield the NIM base URL.

    Scripts record what they received themselves, if a test needs it. With
    ``tls``, connections are HTTPS with that server context's certificate.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(30)
            worker = threading.Thread(
                target=_serve_one, args=(conn, script, stop, tls), daemon=True
            )
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        scheme = "http" if tls is None else "https"
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/nimserver/"
    finally:
        stop.set()
        acceptor.join(5)
        deadline = time.monotonic() + 5
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        listener.close()
