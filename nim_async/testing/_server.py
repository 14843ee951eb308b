"""Serving the emulator's app on a real port with uvicorn.

`serve_in_thread` is for tests in the same process: it binds the socket first
(so port 0 works and connections queue from the start), runs uvicorn on its own
event loop in a daemon thread, and stops it on exit. `serve_forever` runs in the
caller's loop, for ``nim-async emulator --port N``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["serve_forever", "serve_in_thread"]

_STARTUP_TIMEOUT = 10.0  # seconds for uvicorn to start in its thread
_SHUTDOWN_GRACE = 5  # seconds uvicorn gives open requests on exit


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listening now: a client that connects before uvicorn's loop runs waits in the backlog.
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/nimserver/"


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` on ``host``:``port`` in a daemon thread while the ``with`` body runs.

    Args:
        app: The ASGI app.
        host: The address to bind.
        port: The port to bind; 0 picks a free one.

    Yields:
        The base URL of the NIM API, ``"http://127.0.0.1:<port>/nimserver/"``.

    Raises:
        RuntimeError: uvicorn did not start.
        OSError: The address cannot be bound.
    """
    import uvicorn

    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,  # leave the host process's logging configuration alone
        log_level="warning",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=_SHUTDOWN_GRACE,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=asyncio.run,
        args=(server.serve(sockets=[sock]),),
        name=f"nim-emulator {_url(sock)}",
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the NIM emulator's server did not start")
            time.sleep(0.005)
        yield _url(sock)
    finally:
        server.should_exit = True
        thread.join(_SHUTDOWN_GRACE + 2)
        sock.close()


async def serve_forever(app: ASGIApp, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``app`` in the running event loop until cancelled or signalled (Ctrl+C).

    Cancellation shuts the server down cleanly: the port is released on return.

    Args:
        app: The ASGI app.
        host: The address to bind.
        port: The port to bind.

    Raises:
        OSError: The address cannot be bound.
    """
    import uvicorn

    sock = _bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", ws="none"))
    try:
        await server.serve(sockets=[sock])
    except BaseException:
        # Cancelled: uvicorn's own shutdown only runs after its main loop ends normally.
        if server.started:
            with anyio.CancelScope(shield=True):
                await server.shutdown(sockets=[sock])
        raise
    finally:
        sock.close()
