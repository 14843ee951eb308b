"""A transport wrapper that records when each request really went out and came back."""

from __future__ import annotations

import statistics
import time

import attrs
import httpx


@attrs.frozen
class Exchange:
    action: str
    sent: float
    answered: float
    code: int | None


class TimingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; ``exchanges`` lists every request with wall-clock times."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.time()
        response = await self.inner.handle_async_request(request)
        await response.aread()
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
        action = request.url.path.split("/nimserver/")[-1].removesuffix(".action")
        self.exchanges.append(Exchange(action, sent, time.time(), code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def ideal_seconds(exchanges: list[Exchange], calls: int, per: float) -> float:
    """The shortest time the budget allows: windows × per + one answer time per window.

    A slot frees `per` after its answer, so each window costs `per` plus one
    answer time (the median one measured), and the last one only its answer time.
    """
    windows = -(-len(exchanges) // calls)
    latency = statistics.median(e.answered - e.sent for e in exchanges)
    return (windows - 1) * per + windows * latency


def elapsed_seconds(exchanges: list[Exchange]) -> float:
    """From the first send to the last answer."""
    return max(e.answered for e in exchanges) - min(e.sent for e in exchanges)
