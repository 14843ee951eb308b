"""The per-call parts of benchmarks/run_all.py: CPU, memory, the event loop, uploads, bulk.

Definitions and settings: the docstring of run_all.py and bench_common.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
from bench_common import (
    APP_KEY,
    APP_SECRET,
    BASE_URL,
    CPU_CALLS,
    CPU_WARM_UP,
    FREEZE_CALLS,
    FREEZE_DELAY,
    HEARTBEAT,
    HERE,
    MEMORY_CALLS,
    MEMORY_CHECKPOINT,
    SEND_MSG_ANSWER,
    reset_peak,
    rss_kb,
    signed_headers,
)

# --- CPU per call ------------------------------------------------------------------------


def _answer_send_msg(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=SEND_MSG_ANSWER)


def _answering_client() -> Any:
    """A NimClient whose every call is answered at once, limits off."""
    import nim_async as nim

    return nim.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url=BASE_URL,
        transport=httpx.MockTransport(_answer_send_msg),
        rate_limits=None,
    )


async def _nim_sequential(count: int) -> None:
    import nim_async as nim

    async with _answering_client() as client:
        for number in range(count):
            await client.send_msg("alice", f"user{number}", nim.Text("hello"))


async def _raw_sequential(count: int) -> None:
    body = json.dumps({"msg": "hello"})
    async with httpx.AsyncClient(
        base_url=BASE_URL, transport=httpx.MockTransport(_answer_send_msg)
    ) as http:
        for number in range(count):
            form = {"from": "alice", "ope": "0", "to": f"user{number}", "type": "0", "body": body}
            response = await http.post(
                "msg/sendMsg.action",
                content=urlencode(form).encode(),
                headers=signed_headers(APP_KEY, APP_SECRET),
            )
            answer = response.json()
            if answer["code"] != 200:
                raise RuntimeError(answer)
            data = answer["data"]
            (data["msgid"], data["timetag"], data["antispam"])


def part_cpu(side: str) -> dict[str, Any]:
    job = {"nim": _nim_sequential, "raw": _raw_sequential}[side]
    anyio.run(job, CPU_WARM_UP)
    started = time.process_time()
    anyio.run(job, CPU_CALLS)
    return {"cpu": time.process_time() - started}


# --- memory over many calls ------------------------------------------------------------------


def part_memory() -> dict[str, Any]:
    import nim_async as nim

    async def job() -> dict[str, float]:
        async with _answering_client() as client:
            for number in range(1000):
                await client.send_msg("alice", f"user{number}", nim.Text("hello"))
            reset_peak()
            before = rss_kb("VmRSS:")
            marks: dict[str, float] = {}
            for number in range(1, MEMORY_CALLS + 1):
                await client.send_msg("alice", f"user{number}", nim.Text("hello"))
                if number in (MEMORY_CHECKPOINT, MEMORY_CALLS):
                    marks[str(number)] = (rss_kb("VmHWM:") - before) / 1024
            return marks

    return anyio.run(job)


# --- event loop freeze -----------------------------------------------------------------------


class _SlowTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(FREEZE_DELAY)
        return httpx.Response(200, json=SEND_MSG_ANSWER)


async def _heartbeat_during(work: Callable[[], Awaitable[None]]) -> float:
    """The longest gap between heartbeats (each sleeps ``HEARTBEAT``) while ``work`` runs."""
    longest = 0.0
    done = False

    async def beat() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(HEARTBEAT)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    async with anyio.create_task_group() as group:
        group.start_soon(beat)
        await asyncio.sleep(HEARTBEAT * 3)
        await work()
        done = True
    return longest


async def part_freeze() -> dict[str, Any]:
    import nim_async as nim

    async def ours() -> None:
        async with (
            nim.NimClient(
                APP_KEY, APP_SECRET, base_url=BASE_URL, transport=_SlowTransport(), rate_limits=None
            ) as client,
            anyio.create_task_group() as group,
        ):
            for number in range(FREEZE_CALLS):
                group.start_soon(client.send_msg, "alice", f"user{number}", nim.Text("hello"))

    async def raw() -> None:
        body = json.dumps({"msg": "hello"})

        async def post(http: httpx.AsyncClient, number: int) -> None:
            form = {"from": "alice", "ope": "0", "to": f"user{number}", "type": "0", "body": body}
            response = await http.post(
                "msg/sendMsg.action",
                content=urlencode(form).encode(),
                headers=signed_headers(APP_KEY, APP_SECRET),
            )
            response.json()

        async with (
            httpx.AsyncClient(base_url=BASE_URL, transport=_SlowTransport()) as http,
            anyio.create_task_group() as group,
        ):
            for number in range(FREEZE_CALLS):
                group.start_soon(post, http, number)

    await ours()  # warm-up
    started = time.perf_counter()
    nim_gap = await _heartbeat_during(ours)
    nim_wall = time.perf_counter() - started
    await raw()
    raw_gap = await _heartbeat_during(raw)
    return {"nim": nim_gap, "raw": raw_gap, "nim_wall": nim_wall}


# --- bulk and upload: the existing scripts ----------------------------------------------------


def _bulk_side(side: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(HERE / "bench_bulk.py"), "--side", side],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def part_upload() -> dict[str, Any]:
    import bench_upload_memory as upload

    import nim_async as nim

    async def job() -> dict[str, float]:
        content = bytes(range(256)) * (upload.FILE_BYTES // 256)
        async with nim.NimClient(
            "bench-key",
            "bench-secret",
            base_url=BASE_URL,
            transport=upload._Sink(),
            rate_limits=None,
        ) as client:
            growth = await upload._peak_growth(client, "upload", content)
        return {
            "times": growth / len(content),
            "mb": growth / 1e6,
            "goal": upload.GOAL_TIMES_THE_FILE,
        }

    return anyio.run(job)
