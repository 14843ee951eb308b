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

    A slot frees `per` after its answer, so each window costs `per` plus its
    answer time: from its first send to its last answer (requests grouped in
    send order, `calls` to a window), which includes the time the client and
    the server need to handle a window's calls. What this leaves out is the
    limiter's own slack between windows. (That a fresh window is sent as one
    burst, not paced, is tested on its own.)
    """
    ordered = sorted(exchanges, key=lambda exchange: exchange.sent)
    windows = [ordered[i : i + calls] for i in range(0, len(ordered), calls)]
    answering = sum(
        max(e.answered for e in window) - min(e.sent for e in window) for window in windows
    )
    return (len(windows) - 1) * per + answering


def budget_share(exchanges: list[Exchange], calls: int, per: float) -> float:
    """The share of the budget used: calls made / calls the budget admits in the same time.

    With slots freeing `per` after their answers, the budget admits `calls`
    every `per` + one answer time (the median measured); over the elapsed time
    plus the last window's `per`, that is calls × (elapsed + per) / (per + answer).
    """
    answer = statistics.median(e.answered - e.sent for e in exchanges)
    admitted = calls * (elapsed_seconds(exchanges) + per) / (per + answer)
    return len(exchanges) / admitted


def elapsed_seconds(exchanges: list[Exchange]) -> float:
    """From the first send to the last answer."""
    return max(e.answered for e in exchanges) - min(e.sent for e in exchanges)
