"""Peak memory of a 15 MB upload: ``upload`` (base64 in a form field) and ``file_upload``.

Measured with tracemalloc as growth over the memory held before the call (the
file's own bytes are the caller's and not counted), through ``NimClient``'s
default transport over a loopback socket to bench_servers.py's fixed-answer
server in another process, which reads the whole request and answers a URL.
What the socket has not taken yet sits in the client's buffers and counts.
The goal (README): under three times the file for ``upload``; ``file_upload``
streams the file.

Run: ``nox -s bench`` or ``python benchmarks/bench_upload_memory.py``.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import APP_KEY, APP_SECRET
from bench_servers import serving

FILE_BYTES = 15 * 1024 * 1024
GOAL_TIMES_THE_FILE = 3.0


async def peak_growth(base_url: str, method: str) -> int:
    """Bytes of peak growth while ``NimClient.<method>`` uploads ``FILE_BYTES``."""
    import nim_async as nim

    content = bytes(range(256)) * (FILE_BYTES // 256)
    async with nim.NimClient(APP_KEY, APP_SECRET, base_url=base_url, rate_limits=None) as client:
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


def main() -> int:
    rows = []
    with serving("fixed") as server:
        for method in ("upload", "file_upload"):
            rows.append((method, anyio.run(peak_growth, server.url, method)))
    print("Upload of a 15 MB file over a loopback socket: peak memory growth")
    print(f"  {'method':<12} {'peak growth':>12} {'x the file':>11}   goal")
    failed = False
    for method, growth in rows:
        times = growth / FILE_BYTES
        goal = f"< {GOAL_TIMES_THE_FILE:g}x" if method == "upload" else "-"
        print(f"  {method:<12} {growth / 1e6:>9.1f} MB {times:>10.2f}x   {goal}")
        failed |= method == "upload" and times >= GOAL_TIMES_THE_FILE
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
