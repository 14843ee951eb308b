"""NimClient: its lifecycle, and one thin method per NIM endpoint."""

from __future__ import annotations

import enum
from types import TracebackType

import httpx

from ._auth import CheckSumAuth
from ._files import FileEndpoints
from ._history import HistoryEndpoints
from ._limits import Limiter, LimiterStats, RateLimits, shared_local_limiter
from ._messages import MessageEndpoints
from ._notifications import NotificationEndpoints
from ._pipeline import Pipeline
from ._retry import RetryPolicy

__all__ = [
    "CHINA_URL",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "OVERSEAS_URL",
    "NimClient",
]

CHINA_URL = "https://api.netease.im/nimserver/"
OVERSEAS_URL = "https://api-sg.netease.im/nimserver/"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_BATCH_SIZE = 500


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


def _hold_time(timeout: httpx.Timeout) -> float:
    # The longest one attempt can take: what a shared limiter may hold a slot for.
    parts = [timeout.connect, timeout.write, timeout.read, timeout.pool]
    return sum(part for part in parts if part is not None) or 60.0


class NimClient(MessageEndpoints, NotificationEndpoints, FileEndpoints, HistoryEndpoints):
    """An asyncio client for NIM's message API, with one pooled connection pool.

    The endpoint methods are grouped by topic in ``MessageEndpoints``
    (send_msg, send_batch_msg, broadcast), ``NotificationEndpoints``
    (send_attach_msg, send_batch_attach_msg), ``FileEndpoints`` (upload,
    file_upload, clean_nos_files) and ``HistoryEndpoints`` (recall,
    delete_msg_one_way, delete_roam_session); all share this client's pipeline.

    Create it inside the running event loop (in a FastAPI lifespan, not at
    import time): its connections belong to the loop that first uses them.
    Use it as ``async with NimClient(...) as client:`` or call :meth:`aclose`.

    Args:
        app_key: The app's AppKey.
        app_secret: The app's AppSecret; it never appears in a repr, log or error.
        base_url: ``CHINA_URL`` (default) or ``OVERSEAS_URL``, or an emulator's URL.
        rate_limits: The client-side budget per action; None turns limiting off.
        limiter: Where the budget's state lives; None is an in-process ``LocalLimiter``.
        retry: What to retry and how long to wait.
        timeout: Seconds for each phase of a request, or an ``httpx.Timeout``.
        max_connections: The connection pool's size.
        batch_size: Recipients per batch call (at most 100 when msg ids are asked for).
        transport: Any ``httpx.AsyncBaseTransport``, e.g. ``NimEmulator.transport()``.
    """

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        base_url: str = CHINA_URL,
        rate_limits: RateLimits | None = RateLimits.default(),  # noqa: B008 - immutable
        limiter: Limiter | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - immutable
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 1 <= batch_size <= 500:
            raise ValueError(f"batch_size must be 1 to 500 (the seed's limit), got {batch_size}")
        self.app_key = app_key
        self.batch_size = batch_size
        self.rate_limits = rate_limits
        self.retry = retry
        http_timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            auth=CheckSumAuth(app_key, app_secret),
            timeout=http_timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )
        self._pipeline = Pipeline(
            self._http,
            app_key=app_key,
            rate_limits=rate_limits,
            limiter=limiter if limiter is not None else shared_local_limiter(),
            retry=retry,
            hold=_hold_time(http_timeout),
        )
        self._state = _State.UNOPENED

    def __repr__(self) -> str:
        return f"NimClient(app_key={self.app_key!r}, base_url={str(self._http.base_url)!r})"

    async def __aenter__(self) -> NimClient:
        if self._state is _State.CLOSED:
            raise RuntimeError("this NimClient is closed; create a new one")
        self._state = _State.OPENED
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. The client cannot be used afterwards."""
        self._state = _State.CLOSED
        await self._http.aclose()

    def limiter_stats(self) -> dict[str, LimiterStats]:
        """Return, per action, the calls made, the waits for a slot, their time and the 416s seen.

        Actions never called are absent. With ``rate_limits=None`` nobody waits,
        but calls and 416s are still counted.
        """
        return self._pipeline.stats()

    def _pipe(self) -> Pipeline:
        if self._state is _State.CLOSED:
            raise RuntimeError("this NimClient is closed; create a new one")
        return self._pipeline
