"""The client's settings and lifecycle, which every endpoint method builds on.

Like httpx's ``BaseClient`` under ``AsyncClient``: ``BaseClient`` checks and
holds the settings, owns the transports (``Wire``: the connection pool) and
the pipeline, and opens and closes them; ``NimClient`` adds one thin method per
endpoint.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import math
import ssl
import weakref
from collections.abc import Sequence
from importlib.metadata import version
from types import TracebackType
from typing import TypeVar

import httpx

from ._auth import CheckSumAuth
from ._clock import ServerClock
from ._config import int_between, refuse
from ._errors import ClientStateError, ConfigurationError
from ._http import Hosts
from ._limits import Limiter, LimiterStats, RateLimits, shared_local_limiter
from ._pipeline import Pipeline
from ._retry import RetryPolicy
from ._wire import Wire, default_routes

__all__ = [
    "CHINA_URL",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_RATE_LIMITS",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "MAX_BATCH_SIZE",
    "MSGID_BATCH_SIZE",
    "OVERSEAS_URL",
    "USER_AGENT",
    "YUNXIN_CN_URLS",
    "YUNXIN_SG_URLS",
    "BaseClient",
]

# NetEase's documented address (接口概述, "Base URLs"): the default.
CHINA_URL = "https://api.netease.im/nimserver/"
OVERSEAS_URL = "https://api-sg.netease.im/nimserver/"
# What both official server SDKs address today, with their backups, in the
# order they try them (Java SDK core/Constants.java; Go SDK src/core/base/constants.go).
YUNXIN_CN_URLS = tuple(
    f"https://{host}.yunxinapi.com/nimserver/"
    for host in ("api-cn", "api-cn-bak", "api-cn-01", "api-cn-02", "api-cn-03")
)
YUNXIN_SG_URLS = tuple(
    f"https://{host}.yunxinapi.com/nimserver/"
    for host in ("api-sg", "api-sg-bak", "api-sg-01", "api-sg-02", "api-sg-03")
)
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 500  # seed, sendBatchMsg and sendBatchAttachMsg: "最大限500人"
# seed, sendBatchMsg returnMsgid: "toAccids包含的账号数量不可以超过100个".
MSGID_BATCH_SIZE = 100
DEFAULT_MAX_CONCURRENCY = 4  # batch calls in flight at once, per bulk send
DEFAULT_RATE_LIMITS = RateLimits.default()
DEFAULT_RETRY = RetryPolicy()
# The longest a call waits for its rate-limit slot (or for a block to end before
# a retry), in seconds. Under the default plan a call that waits at all waits
# for a per-second window (at most 1 s plus the answer times) or for the 10 s
# block after a 416; both fit. A slot a minute or a day away (broadcasts at
# 10/min, job/nos/del at 5/day) fails at once with SlotTimeout and its
# retry_after, where no caller would choose to sit. And it stays well below the
# 30-60 s after which proxies and load balancers give up on a request, so a
# request handler answers 429 with Retry-After instead of timing out.
DEFAULT_MAX_WAIT = 10.0
# The official SDKs identify themselves too.
USER_AGENT = f"nim-async/{version('nim-async')}"

_Client = TypeVar("_Client", bound="BaseClient")


class _Keep(enum.Enum):
    """``with_options(max_wait=...)`` not given: keep the client's."""

    MAX_WAIT = enum.auto()


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


def _text(setting: str, value: object) -> str:
    # Checked here: a bytes secret would otherwise fail at the first call, inside signing.
    if isinstance(value, str) and value:
        return value
    if setting != "app_secret":
        raise refuse(setting, "a non-empty str", value)
    # Its type only: the secret's value never appears in an error.
    if value is None or isinstance(value, str):
        got = "None" if value is None else "an empty str"
    else:
        got = f"a {type(value).__name__} (value not shown)"
    hint = "; decode bytes first, e.g. secret.decode()" if isinstance(value, bytes) else ""
    raise ConfigurationError(f"app_secret must be a non-empty str, got {got}{hint}")


def _checked_timeout(value: object) -> httpx.Timeout:
    if isinstance(value, httpx.Timeout):
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value) and value > 0:  # type: ignore[arg-type,operator]
        return httpx.Timeout(value)  # type: ignore[arg-type]
    raise refuse("timeout", "a positive number of seconds or an httpx.Timeout", value)


def _checked_rate_limits(value: object) -> RateLimits | None:
    if value is not None and not isinstance(value, RateLimits):
        raise refuse("rate_limits", "a RateLimits or None", value)
    return value


def _checked_retry(value: object) -> RetryPolicy:
    if not isinstance(value, RetryPolicy):
        raise refuse("retry", "a RetryPolicy", value)
    return value


def _checked_max_wait(value: object) -> float | None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if value is not None and not (number and 0 < value < math.inf):  # type: ignore[operator]
        raise refuse("max_wait", "a positive number of seconds or None", value)
    return value  # type: ignore[return-value]


def _checked_batch_size(value: object) -> int:
    # seed: "最大限500人"; sendBatchAttachMsg alone takes more, per call (batch_size=).
    return int_between("batch_size", value, 1, MAX_BATCH_SIZE)


def _checked_hosts(value: object) -> Hosts:
    urls = [value] if isinstance(value, str | httpx.URL) else value
    accepts = "an http(s) URL, or a non-empty sequence of them (tried in order)"
    if not isinstance(urls, Sequence) or isinstance(urls, str) or not urls:
        raise refuse("base_url", accepts, value)
    checked = []
    for url in urls:
        if not isinstance(url, str | httpx.URL):
            raise refuse("base_url", accepts, value)
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise refuse("base_url", accepts, value) from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise refuse("base_url", accepts, value)
        # A base URL must end with "/" for "msg/sendMsg.action" to go under it.
        path = parsed.path if parsed.path.endswith("/") else parsed.path + "/"
        checked.append(parsed.copy_with(path=path))
    return Hosts(tuple(checked))


def _hold_time(timeout: httpx.Timeout) -> float:
    # The longest one attempt can take: what a shared limiter may hold a slot for.
    parts = [timeout.connect, timeout.write, timeout.read, timeout.pool]
    return sum(part for part in parts if part is not None) or 60.0


class BaseClient:
    """Settings, connection pool, pipeline and lifecycle of a ``NimClient``.

    Every argument is checked here, at construction: a wrong one raises
    ``ConfigurationError``. ``retry``, ``rate_limits``, ``timeout``,
    ``batch_size`` and ``max_wait`` can be set later and take effect from the
    next call; ``app_key``, ``base_url`` and ``limiter`` are read-only.

    ``max_wait`` (default ``DEFAULT_MAX_WAIT``, 10 s) bounds every wait the
    client would otherwise hide: a call whose rate-limit slot frees later fails
    at once with ``SlotTimeout`` (nothing sent; ``retry_after`` says when the
    slot frees), and a 416 whose block is longer is not retried
    (``RateLimited`` with ``retry_after``). 10 s covers what the default plan
    makes a call wait (a per-second window, the 10 s block after a 416), fails
    at once where only minutes or a day would do, and stays well below the
    30-60 s after which proxies give up on a request. The chunks of a bulk send
    wait at least their action's longest window plus its block (two minutes
    for batch sends), so a job rides out its budget instead of failing chunks.
    None waits as long as the budget needs.
    """

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        base_url: str | httpx.URL | Sequence[str | httpx.URL] = CHINA_URL,
        rate_limits: RateLimits | None = DEFAULT_RATE_LIMITS,
        limiter: Limiter | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
        max_wait: float | None = DEFAULT_MAX_WAIT,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self._app_key = _text("app_key", app_key)
        self._clock = ServerClock()
        secret = _text("app_secret", app_secret)
        hosts = _checked_hosts(base_url)
        if limiter is not None and not isinstance(limiter, Limiter):
            raise refuse("limiter", "a LocalLimiter, a RedisLimiter or None", limiter)
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise refuse("max_connections", "an int of at least 1", max_connections)
        if max_connections < 1:
            raise refuse("max_connections", "an int of at least 1", max_connections)
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise refuse("transport", "an httpx.AsyncBaseTransport or None", transport)
        if verify is not None and not isinstance(verify, ssl.SSLContext):
            raise refuse("verify", "an ssl.SSLContext or None", verify)
        if verify is not None and transport is not None:
            raise ConfigurationError(
                "verify is for the default transport; give your own transport its TLS context"
            )
        self._batch_size = _checked_batch_size(batch_size)
        http_timeout = _checked_timeout(timeout)
        routes: dict[str, httpx.AsyncBaseTransport] = {}
        if transport is None:
            try:
                transport, routes = default_routes(verify, max_connections)
            except ValueError as exc:
                raise ConfigurationError(
                    "a proxy named by the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) "
                    f"cannot be used: {exc}"
                ) from None
        auth = CheckSumAuth(self._app_key, secret, clock=self._clock.now)
        self._wire = Wire(
            transport,
            routes=routes,
            timeout=http_timeout,
            signature=auth.headers,
            user_agent=USER_AGENT,
        )
        self._pipeline = Pipeline(
            self._wire,
            hosts=hosts,
            clock=self._clock,
            app_key=self._app_key,
            rate_limits=_checked_rate_limits(rate_limits),
            limiter=limiter if limiter is not None else shared_local_limiter(),
            retry=_checked_retry(retry),
            hold=_hold_time(http_timeout),
            max_connections=max_connections,
            pool_timeout=http_timeout.pool,
            max_wait=_checked_max_wait(max_wait),
        )
        self._state = _State.UNOPENED
        # Set in the event loop that first uses the client: httpx's pool cannot
        # move between loops (its connections and locks belong to the first).
        # (A weak reference: a client kept after its loop ended must not keep the loop.)
        self._home_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app_key={self._app_key!r}, base_url={str(self.base_url)!r})"

    @property
    def app_key(self) -> str:
        """The app's AppKey (read-only)."""
        return self._app_key

    @property
    def base_url(self) -> httpx.URL:
        """Where calls go now: the first of ``base_url``'s hosts that could be reached."""
        return self._pipeline.hosts.current

    @property
    def limiter(self) -> Limiter:
        """Where the rate limits' state lives (read-only)."""
        return self._pipeline.limiter

    @property
    def rate_limits(self) -> RateLimits | None:
        """The client-side budget per action; None means no client-side limiting."""
        return self._pipeline.rate_limits

    @rate_limits.setter
    def rate_limits(self, value: RateLimits | None) -> None:
        self._pipeline.rate_limits = _checked_rate_limits(value)

    @property
    def retry(self) -> RetryPolicy:
        """What is retried, and how long to wait in between."""
        return self._pipeline.retry

    @retry.setter
    def retry(self, value: RetryPolicy) -> None:
        self._pipeline.retry = _checked_retry(value)

    @property
    def timeout(self) -> httpx.Timeout:
        """The timeouts of each request; setting a number sets every phase."""
        return self._wire.timeout

    @timeout.setter
    def timeout(self, value: float | httpx.Timeout) -> None:
        checked = _checked_timeout(value)
        self._wire.timeout = checked
        self._pipeline.hold = _hold_time(checked)

    @property
    def max_wait(self) -> float | None:
        """The longest a call waits for its rate-limit slot, in seconds; None: unbounded."""
        return self._pipeline.max_wait

    @max_wait.setter
    def max_wait(self, value: float | None) -> None:
        self._pipeline.max_wait = _checked_max_wait(value)

    @property
    def batch_size(self) -> int:
        """Recipients per batch call, 1 to 500 (at most 100 when msg ids are asked for)."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = _checked_batch_size(value)

    async def __aenter__(self: _Client) -> _Client:
        """Open the client for ``async with``; return the client itself.

        Raises:
            ClientStateError: The client is closed.
        """
        if self._state is _State.CLOSED:
            raise ClientStateError(
                f"this {type(self).__name__} is closed (nothing was sent); create a new one"
            )
        self._state = _State.OPENED
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client (`aclose`) when the ``async with`` block ends."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. The client cannot be used afterwards.

        Calls still waiting for a rate-limit slot raise ``ClientStateError``:
        they were not sent.
        """
        self._state = _State.CLOSED
        self._pipeline.close()
        await self._wire.aclose()

    def with_options(self: _Client, *, max_wait: float | _Keep | None = _Keep.MAX_WAIT) -> _Client:
        """A view of this client that shares its connection pool, limiter and lifecycle.

        As OpenAI's and Anthropic's clients do: ``client.with_options(max_wait=2.0)``
        in a request handler fails fast with ``SlotTimeout`` (nothing sent)
        when the rate-limit slot comes later than 2 s, instead of waiting out
        the budget; ``max_wait=None`` in a worker waits as long as the budget
        needs. The view's bound holds for the chunks of its bulk sends too
        (the client's own chunks wait at least a window and a block), and a
        chunk refused for its slot stops the job: ``BatchResult.stopped`` says
        why and the rest is surely unsent. Closing either closes both.

        Args:
            max_wait: The longest a call waits for its rate-limit slot, in
                seconds; None waits as long as the budget needs. Not given:
                the client's.

        Raises:
            ConfigurationError: ``max_wait`` is not a positive number or None.
        """
        wait = self.max_wait if max_wait is _Keep.MAX_WAIT else _checked_max_wait(max_wait)
        view = copy.copy(self)
        view._pipeline = self._pipeline.with_max_wait(wait)
        return view

    def limiter_stats(self) -> dict[str, LimiterStats]:
        """Return, per action, the calls made, the waits for a slot, their time and the 416s seen.

        Actions never called are absent. With ``rate_limits=None`` nobody waits,
        but calls and 416s are still counted.
        """
        return self._pipeline.stats()

    def _open_pipeline(self) -> Pipeline:
        """The pipeline, for a call in this event loop.

        Raises:
            ClientStateError: The client is closed, or its pool belongs to
                another event loop (a second ``asyncio.run``, another thread).
        """
        if self._state is _State.CLOSED:
            raise ClientStateError(
                f"this {type(self).__name__} is closed (nothing was sent); create a new one"
            )
        loop = asyncio.get_running_loop()
        if self._home_loop is None:
            self._home_loop = weakref.ref(loop)
        elif self._home_loop() is not loop:
            raise ClientStateError(
                f"this {type(self).__name__} was first used in another event loop, and its "
                "pooled connections belong to that loop: create one client per event "
                "loop (in a FastAPI lifespan, or inside each asyncio.run)"
            )
        return self._pipeline
