"""Serving the emulator's app: in-process to httpx, or on a real port with uvicorn.

`InProcessTransport` is httpx's ASGI transport bounded by each request's read
timeout, as a socket would be. `serve_in_thread` is for tests in the same
process: it binds the socket first (so port 0 works and connections queue from
the start), runs uvicorn on its own event loop in a daemon thread, and stops it
on exit. `serve_forever` runs in the caller's loop, for ``nim-async emulator --port N``.
Both call ``on_stop`` once the server has shut down, and both turn off uvicorn's
``Date`` header: the app sets its own, from the emulator's (possibly skewed) clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import anyio
import httpx

from ._extra import needs_extra

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

__all__ = ["InProcessTransport", "serve_forever", "serve_in_thread"]

_STARTUP_TIMEOUT = 10.0  # seconds for uvicorn to start in its thread
_SHUTDOWN_GRACE = 5  # seconds uvicorn gives open requests on exit


class InProcessTransport(httpx.AsyncBaseTransport):
    """httpx's ASGI transport to the app, honouring each request's read timeout.

    ``httpx.ASGITransport`` ignores timeouts: a client would wait out any
    `set_latency`. Here the whole exchange must end within the ``read`` timeout
    httpx puts in ``request.extensions["timeout"]``, else it raises
    ``httpx.ReadTimeout``, as over a socket; the app has received the request by
    then. Connect, write and pool timeouts have nothing to bound in-process.
    """

    __slots__ = ("_asgi",)

    def __init__(self, app: ASGIApp) -> None:
        """Send requests to ``app``, an ASGI app, in the caller's event loop."""
        self._asgi = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Run ``request`` through the app.

        Raises:
            httpx.ReadTimeout: No answer within the request's read timeout.
        """
        read = request.extensions.get("timeout", {}).get("read")
        with anyio.move_on_after(read):
            return await self._asgi.handle_async_request(request)
        raise httpx.ReadTimeout(f"no answer within {read:g} s", request=request)

    async def aclose(self) -> None:
        """Close the wrapped ASGI transport."""
        await self._asgi.aclose()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP (base_events._set_nodelay), and accepted sockets inherit it. Without it,
    # Nagle and the client's delayed ACK add ~40 ms to each keep-alive answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


def _server(config: uvicorn.Config, on_stop: Callable[[], None] | None) -> uvicorn.Server:
    import uvicorn

    stopped = False

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            nonlocal stopped
            if stopped:
                # Done already: serve_forever's clean-up comes here again when on_stop raised.
                return
            await super().shutdown(sockets)
            stopped = True
            # Here rather than after serve(): on a signal, uvicorn re-raises it as
            # serve() ends, and SIGTERM's default action ends the process first.
            if on_stop is not None:
                on_stop()

    return _Server(config)


@contextlib.contextmanager
def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_stop: Callable[[], None] | None = None,
) -> Iterator[str]:
    """Serve ``app`` on ``host``:``port`` in a daemon thread while the ``with`` body runs.

    Args:
        app: The ASGI app.
        host: The address to bind.
        port: The port to bind; 0 picks a free one.
        on_stop: Called once, in the server's thread, when it has shut down.

    Yields:
        The base URL of the NIM API, ``"http://127.0.0.1:<port>/nimserver/"``.

    Raises:
        RuntimeError: uvicorn did not start.
        OSError: The address cannot be bound.
        ModuleNotFoundError: uvicorn is not installed (the ``emulator`` extra).
    """
    with needs_extra():
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
        date_header=False,  # the app's Date header follows the emulator's clock
    )
    server = _server(config, on_stop)
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


async def serve_forever(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` in the running event loop until cancelled or signalled (Ctrl+C).

    Cancellation shuts the server down cleanly: the port is released on return.

    Args:
        app: The ASGI app.
        host: The address to bind.
        port: The port to bind.
        on_stop: Called once when the server has shut down, signalled or cancelled;
            what it raises ends the serving, in place of a signal's own effect.

    Raises:
        OSError: The address cannot be bound.
        ModuleNotFoundError: uvicorn is not installed (the ``emulator`` extra).
    """
    with needs_extra():
        import uvicorn

    sock = _bind(host, port)
    config = uvicorn.Config(app, lifespan="off", ws="none", date_header=False)
    server = _server(config, on_stop)
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
