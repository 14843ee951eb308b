"""OpenTelemetry spans and metrics, when the ``otel`` extra is installed; nothing otherwise.

Each attempt is a span following OpenTelemetry's HTTP client conventions
(``POST``, kind CLIENT, ``http.request.method``, ``url.full``,
``server.address``, ``http.response.status_code``, ``error.type``) plus NIM's
own attributes (``nim.action``, ``nim.attempt``, ``nim.code``,
``nim.limiter.wait``). Metrics: calls by action and outcome, 416 answers,
limiter wait time, batch recipients by outcome. The API is looked up once, at
the first call; without it every hook is a no-op and nothing is imported.

Telemetry never changes a call's outcome: it runs after the answer is known, so
an exception from an exporter or a span processor there would replace a
delivered message's result with an error, and a caller retrying on it would
send the message twice. Its errors are logged instead: the first with its
traceback at WARNING, the rest at DEBUG.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Telemetry", "telemetry"]

logger = logging.getLogger("nim_async")

_INSTRUMENTATION = "nim_async"


class Telemetry:
    """The no-op telemetry: what runs when OpenTelemetry is not installed."""

    __slots__ = ()

    def attempt(
        self,
        *,
        action: str,
        attempt: int,
        base: object,
        started_ns: int,
        waited: float | None,
        outcome: object,
    ) -> None:
        """Record one finished attempt: its span and its metrics."""

    def batch_recipients(self, action: str, outcome: str, count: int) -> None:
        """Count ``count`` recipients of a bulk send with ``outcome``."""


class _OpenTelemetry(Telemetry):
    """Spans and metrics through the OpenTelemetry API (the ``otel`` extra)."""

    __slots__ = (
        "_calls",
        "_configured_once",
        "_failures",
        "_maybe_set",
        "_metrics",
        "_proxy_meter_provider",
        "_rate_limited",
        "_recipients",
        "_trace",
        "_tracer",
        "_wait",
    )

    def __init__(self, trace: Any, metrics: Any) -> None:
        from importlib.metadata import version

        self._trace = trace
        self._metrics = metrics
        self._configured_once = False
        self._failures = 0
        self._proxy_meter_provider = _proxy_meter_provider()
        self._maybe_set = _provider_maybe_set()
        self._tracer = trace.get_tracer(_INSTRUMENTATION, version("nim-async"))
        meter = metrics.get_meter(_INSTRUMENTATION, version("nim-async"))
        self._calls = meter.create_counter(
            "nim.calls", unit="{call}", description="NIM calls made, by action and outcome"
        )
        self._rate_limited = meter.create_counter(
            "nim.rate_limited", unit="{answer}", description="416 answers: the action blocked"
        )
        self._wait = meter.create_histogram(
            "nim.limiter.wait", unit="s", description="Time waited for a rate-limit slot"
        )
        self._recipients = meter.create_counter(
            "nim.batch.recipients",
            unit="{recipient}",
            description="Recipients of bulk sends, by outcome",
        )

    def attempt(
        self,
        *,
        action: str,
        attempt: int,
        base: object,
        started_ns: int,
        waited: float | None,
        outcome: object,
    ) -> None:
        """See `Telemetry.attempt`; never raises."""
        try:
            if self._configured():
                self._record_attempt(action, attempt, base, started_ns, waited, outcome)
        except Exception:
            self._failed(action)

    def _record_attempt(
        self,
        action: str,
        attempt: int,
        base: object,
        started_ns: int,
        waited: float | None,
        outcome: object,
    ) -> None:
        import urllib.parse

        url = f"{base}{action}.action"
        parts = urllib.parse.urlsplit(url)
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            "url.full": url,
            "server.address": parts.hostname or "",
            "nim.action": action,
            "nim.attempt": attempt,
        }
        if parts.port is not None:
            attributes["server.port"] = parts.port
        if waited is not None:
            attributes["nim.limiter.wait"] = waited
        if isinstance(outcome, int):
            attributes["nim.code"] = outcome
            attributes["http.response.status_code"] = 200
        if outcome != 200:
            attributes["error.type"] = str(outcome)
        span = self._tracer.start_span(
            "POST",
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
            start_time=started_ns,
        )
        if outcome != 200:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(outcome)))
        span.end(end_time=time.time_ns())
        labels = {"nim.action": action, "nim.outcome": str(outcome)}
        self._calls.add(1, labels)
        if outcome == 416:
            self._rate_limited.add(1, {"nim.action": action})
        if waited is not None:
            self._wait.record(waited, {"nim.action": action})

    def _configured(self) -> bool:
        # The API alone hands out no-op providers: building spans for them is waste.
        # A provider, once set, stays (the API sets each global once).
        if not self._configured_once:
            if not self._maybe_set():
                return False
            no_tracing = isinstance(
                self._trace.get_tracer_provider(), self._trace.ProxyTracerProvider
            )
            proxy = self._proxy_meter_provider
            no_metrics = proxy is not None and isinstance(self._metrics.get_meter_provider(), proxy)
            self._configured_once = not (no_tracing and no_metrics)
        return self._configured_once

    def batch_recipients(self, action: str, outcome: str, count: int) -> None:
        """See `Telemetry.batch_recipients`; never raises."""
        try:
            if count and self._configured():
                self._recipients.add(count, {"nim.action": action, "nim.outcome": outcome})
        except Exception:
            self._failed(action)

    def _failed(self, action: str) -> None:
        # Called from an except block: exc_info is the telemetry's own error.
        self._failures += 1
        if self._failures == 1:
            logger.warning(
                "OpenTelemetry failed while recording %s (the call's own outcome stands); "
                "later telemetry failures are logged at DEBUG",
                action,
                exc_info=True,
            )
        else:
            logger.debug(
                "OpenTelemetry failed again (%d times) while recording %s",
                self._failures,
                action,
                exc_info=True,
            )


def _proxy_meter_provider() -> type | None:
    # The proxy class is private to the API: should it move, count metrics as set
    # (some work wasted) rather than fail a call.
    try:
        from opentelemetry.metrics import _internal

        proxy: type = _internal._ProxyMeterProvider
    except (ImportError, AttributeError):
        return None
    return proxy


def _provider_maybe_set() -> Callable[[], bool]:
    """A cheap test that is False only while neither global provider can be set.

    The API's getters look up two environment variables at every call until a
    provider is set: most of the cost of a call when OpenTelemetry is installed
    but not configured. When neither variable names a provider as the client
    starts recording, only code can set one, and the API's globals say whether
    it did; when one does, the getters decide at every call.
    """
    trace_api = sys.modules.get("opentelemetry.trace")
    metrics_api = sys.modules.get("opentelemetry.metrics._internal")
    named = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
    if trace_api is None or metrics_api is None or any(name in os.environ for name in named):
        return lambda: True
    # The API's private globals: should they move, every call takes the full check.
    unknown = object()
    if (
        getattr(trace_api, "_TRACER_PROVIDER", unknown) is unknown
        or getattr(metrics_api, "_METER_PROVIDER", unknown) is unknown
    ):
        return lambda: True

    def maybe_set() -> bool:
        return trace_api._TRACER_PROVIDER is not None or metrics_api._METER_PROVIDER is not None

    return maybe_set


_NO_TELEMETRY = Telemetry()
_found: list[Telemetry] = []


def telemetry() -> Telemetry:
    """The telemetry in force: OpenTelemetry's when its API imports, else the no-op one."""
    if not _found:
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            _found.append(_NO_TELEMETRY)
        else:
            try:
                _found.append(_OpenTelemetry(trace, metrics))
            except Exception:
                logger.warning(
                    "OpenTelemetry could not be set up: no spans or metrics from nim_async",
                    exc_info=True,
                )
                _found.append(_NO_TELEMETRY)
    return _found[0]
