"""OpenTelemetry: a span per attempt in the HTTP client conventions, and metrics, read with
the SDK's in-memory exporters; without the API installed nothing is imported."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def exporters() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """The SDK's in-memory exporters, installed once: OpenTelemetry's providers are global."""
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracing)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return spans, reader


@pytest.fixture
def spans(exporters: tuple[InMemorySpanExporter, InMemoryMetricReader]) -> Iterator[Any]:
    exporter = exporters[0]
    exporter.clear()
    yield exporter
    exporter.clear()


def _sum(reader: InMemoryMetricReader, name: str, **labels: str) -> float:
    data = reader.get_metrics_data()
    total = 0.0
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    if all(point.attributes.get(k) == v for k, v in labels.items()):
                        total += getattr(point, "value", getattr(point, "sum", 0))
    return total


async def test_each_attempt_is_a_client_span_in_the_http_conventions(
    spans: InMemorySpanExporter, emulator: NimEmulator
) -> None:
    """POST, kind CLIENT, method, URL, server address, status; and NIM's attributes."""
    async with make_client(emulator) as client:
        await client.send_msg("alice", "bob", nim.Text("hi"))
    (span,) = spans.get_finished_spans()
    assert span.name == "POST"
    assert span.kind == trace.SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["url.full"] == "http://nim.test/nimserver/msg/sendMsg.action"
    assert attributes["server.address"] == "nim.test"
    assert attributes["http.response.status_code"] == 200
    assert (attributes["nim.action"], attributes["nim.attempt"], attributes["nim.code"]) == (
        "msg/sendMsg",
        1,
        200,
    )
    assert "nim.limiter.wait" in attributes
    assert "error.type" not in attributes


async def test_a_416_and_its_retry_are_two_spans_and_counted(
    exporters: tuple[InMemorySpanExporter, InMemoryMetricReader],
    spans: InMemorySpanExporter,
) -> None:
    """The blocked attempt is an error span with nim.code 416; nim.rate_limited counts it."""
    reader = exporters[1]
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    emulator.fail_next("msg/sendAttachMsg", 416)
    before = _sum(reader, "nim.rate_limited", **{"nim.action": "msg/sendAttachMsg"})
    limits = nim.RateLimits.default().scaled(0.001)
    async with make_client(emulator, rate_limits=limits) as client:
        await client.send_attach_msg("alice", "bob", "x")
    first, second = spans.get_finished_spans()
    assert (dict(first.attributes or {})["nim.code"], first.status.is_ok) == (416, False)
    assert dict(first.attributes or {})["error.type"] == "416"
    assert dict(second.attributes or {})["nim.attempt"] == 2
    after = _sum(reader, "nim.rate_limited", **{"nim.action": "msg/sendAttachMsg"})
    assert after - before == 1
    calls = _sum(reader, "nim.calls", **{"nim.action": "msg/sendAttachMsg", "nim.outcome": "200"})
    assert calls >= 1


async def test_batch_recipients_are_counted_by_outcome(
    exporters: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    """Accepted and unregistered recipients of a bulk send, as a counter by outcome."""
    reader = exporters[1]
    emulator = NimEmulator(APP_KEY, APP_SECRET, accounts=["alice", "bob", "carol"])
    labels = {"nim.action": "msg/sendBatchAttachMsg"}
    accepted = _sum(reader, "nim.batch.recipients", **labels, **{"nim.outcome": "accepted"})
    unknown = _sum(reader, "nim.batch.recipients", **labels, **{"nim.outcome": "unregistered"})
    async with make_client(emulator) as client:
        await client.send_batch_attach_msg("alice", ["bob", "carol", "ghost"], "x")
    labels_accepted = {**labels, "nim.outcome": "accepted"}
    labels_unknown = {**labels, "nim.outcome": "unregistered"}
    assert _sum(reader, "nim.batch.recipients", **labels_accepted) - accepted == 2
    assert _sum(reader, "nim.batch.recipients", **labels_unknown) - unknown == 1


class _BrokenProcessor(SpanProcessor):
    """A span processor whose ``on_end`` raises while ``broken`` is set."""

    broken = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.broken:
            raise RuntimeError("exporter down")


@pytest.fixture
def broken_processor(
    exporters: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> Iterator[_BrokenProcessor]:
    """Added to the global provider (which cannot remove it), broken only during the test."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    processor = _BrokenProcessor()
    provider.add_span_processor(processor)
    processor.broken = True
    yield processor
    processor.broken = False


async def test_a_failing_span_processor_never_changes_the_outcome(
    broken_processor: _BrokenProcessor,
    emulator: NimEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Delivered is delivered: telemetry's error is logged (once at WARNING), never raised.

    No other test breaks telemetry, so these are the process's first failures.
    """
    caplog.set_level(logging.DEBUG, logger="nim_async")
    async with make_client(emulator) as client:
        results = [await client.send_msg("alice", "bob", nim.Text(str(n))) for n in range(3)]
    assert [result.msgid for result in results] == [m.msgid for m in emulator.messages]
    assert [call.code for call in emulator.calls] == [200, 200, 200]
    failures = [r for r in caplog.records if "OpenTelemetry failed" in r.getMessage()]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert failures[0].exc_info is not None
    assert "exporter down" in str(failures[0].exc_info[1])


def test_without_the_api_nothing_is_imported_and_calls_work() -> None:
    """The extra absent: no opentelemetry module is imported, every hook is a no-op."""
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "import anyio, nim_async as nim\n"
        "from nim_async.testing import NimEmulator\n"
        "async def main():\n"
        "    emu = NimEmulator('k', 's')\n"
        "    async with nim.NimClient('k', 's', base_url='http://x/nimserver/',\n"
        "                             transport=emu.transport(), rate_limits=None) as c:\n"
        "        await c.send_msg('a', 'b', nim.Text('hi'))\n"
        "        await c.send_batch_msg('a', ['b'], nim.Text('hi'))\n"
        "anyio.run(main)\n"
        "loaded = [m for m in sys.modules if m.startswith('opentelemetry.')]\n"
        "assert loaded == [], loaded\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
