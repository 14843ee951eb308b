"""Peak memory of a 15 MB upload: ``upload`` (base64 in a form field) and ``file_upload``.

Measured with tracemalloc as growth over the memory held before the call (the
file's own bytes are the caller's and not counted), against a transport that
reads the whole request body and answers a URL. The goal (README): under three
times the file for ``upload``; ``file_upload`` streams the file.

Run: ``nox -s bench`` or ``python benchmarks/bench_upload_memory.py``.
"""

from __future__ import annotations

import sys
import tracemalloc

import anyio
import httpx

import nim_async as nim

FILE_BYTES = 15 * 1024 * 1024
GOAL_TIMES_THE_FILE = 3.0


class _Sink(httpx.AsyncBaseTransport):
    """Reads every byte the client sends, keeps none of them, answers a URL."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async for _ in request.stream:  # type: ignore[union-attr]
            pass
        return httpx.Response(200, json={"code": 200, "url": "http://nos.bench/file"})


async def _peak_growth(client: nim.NimClient, method: str, content: bytes) -> int:
    upload = getattr(client, method)
    await upload(b"warm-up")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        await upload(content)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


async def main() -> int:
    content = bytes(range(256)) * (FILE_BYTES // 256)
    rows = []
    async with nim.NimClient(
        "bench-key",
        "bench-secret",
        base_url="http://nim.bench/nimserver/",
        transport=_Sink(),
        rate_limits=None,
    ) as client:
        for method in ("upload", "file_upload"):
            growth = await _peak_growth(client, method, content)
            rows.append((method, growth))
    print("Upload of a 15 MB file: peak memory growth")
    print(f"  {'method':<12} {'peak growth':>12} {'x the file':>11}   goal")
    failed = False
    for method, growth in rows:
        times = growth / len(content)
        goal = f"< {GOAL_TIMES_THE_FILE:g}x" if method == "upload" else "-"
        print(f"  {method:<12} {growth / 1e6:>9.1f} MB {times:>10.2f}x   {goal}")
        failed |= method == "upload" and times >= GOAL_TIMES_THE_FILE
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
