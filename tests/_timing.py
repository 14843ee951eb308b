"""Time helpers for the limiter tests: a clock moved by hand, and a transport that records."""

from __future__ import annotations

import json
import time

import attrs
import httpx


class FakeClock:
    """Monotonic seconds that move only when a test calls :meth:`advance`.

    Give it to ``LocalLimiter(clock=...)``: the window arithmetic then runs in
    virtual time. Start at a value that is exact in binary and advance by such
    values (8, 0.5, ...) so that "exactly ``per`` later" compares exactly.
    """

    def __init__(self, start: float = 1024.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.frozen
class Exchange:
    """One request through a :class:`TimingTransport`, times on the monotonic clock."""

    action: str
    to: str
    sent: float
    answered: float
    code: int | None


class TimingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; ``exchanges`` lists every request with its recipient and times.

    The times are ``time.monotonic()``, the clock the default ``LocalLimiter``
    reads, so they compare with the limiter's waits directly.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        response = await self.inner.handle_async_request(request)
        await response.aread()
        answered = time.monotonic()
        try:
            code = json.loads(response.content).get("code")
        except ValueError:
            code = None
        action = request.url.path.split("/nimserver/")[-1].removesuffix(".action")
        form = httpx.QueryParams(request.content.decode())
        to = form.get("to") or form.get("toAccids") or ""
        self.exchanges.append(Exchange(action, to, sent, answered, code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
