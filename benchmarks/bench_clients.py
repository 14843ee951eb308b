"""The three clients every per-call row compares, each as ``send(number) -> NIM code``.

- ``httpx``: an ``httpx.AsyncClient`` posting the signed form by hand;
- ``aiohttp``: an ``aiohttp.ClientSession`` posting the same bytes;
- ``nim_async``: ``NimClient(..., rate_limits=None)`` with its default transport.

Each sends ``msg/sendAttachMsg`` with the form nim_async sends for
``send_attach_msg("alice", "user<n>", {"n": n})`` (from, msgtype, to, attach),
signed as NIM wants (AppKey, Nonce, CurTime, CheckSum), and decodes the JSON
answer. Every one has a pool of ``CONNECTIONS`` connections, all kept alive
(nim_async's default; httpx's own default keeps only 20 alive, which would
make the raw row pay for reconnecting rather than for httpx).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from bench_common import APP_KEY, APP_SECRET, signed_headers

CONNECTIONS = 100  # nim_async's DEFAULT_MAX_CONNECTIONS
ACTION = "msg/sendAttachMsg.action"
CLIENTS = ("httpx", "aiohttp", "nim_async")
# One call: send call number n, return NIM's code (nim_async raises on any code but 200).
Send = Callable[[int], Awaitable[int]]


def attach_form(number: int) -> bytes:
    """The url-encoded form of call ``number``, as nim_async encodes it."""
    attach = json.dumps({"n": number}, separators=(",", ":"))
    return urlencode(
        {"from": "alice", "msgtype": "0", "to": f"user{number}", "attach": attach}
    ).encode()


@contextlib.asynccontextmanager
async def raw_httpx(base_url: str, timeout: float = 30.0) -> AsyncIterator[Send]:
    import httpx

    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as http:

        async def send(number: int) -> int:
            response = await http.post(
                ACTION, content=attach_form(number), headers=signed_headers(APP_KEY, APP_SECRET)
            )
            code: int = response.json()["code"]
            return code

        yield send


@contextlib.asynccontextmanager
async def raw_aiohttp(base_url: str, timeout: float = 30.0) -> AsyncIterator[Send]:
    import aiohttp

    url = base_url + ACTION
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as session:

        async def send(number: int) -> int:
            async with session.post(
                url, data=attach_form(number), headers=signed_headers(APP_KEY, APP_SECRET)
            ) as response:
                code: int = (await response.json())["code"]
            return code

        yield send


@contextlib.asynccontextmanager
async def nim_async(base_url: str, **settings: Any) -> AsyncIterator[Send]:
    """``settings`` go to ``NimClient``; ``rate_limits`` is None unless given."""
    import nim_async as nim

    settings.setdefault("rate_limits", None)
    async with nim.NimClient(APP_KEY, APP_SECRET, base_url=base_url, **settings) as client:

        async def send(number: int) -> int:
            await client.send_attach_msg("alice", f"user{number}", {"n": number})
            return 200

        yield send


def client(name: str, base_url: str) -> contextlib.AbstractAsyncContextManager[Send]:
    """One of ``CLIENTS`` on ``base_url``, with its defaults but the pool."""
    factories: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[Send]]] = {
        "httpx": raw_httpx,
        "aiohttp": raw_aiohttp,
        "nim_async": nim_async,
    }
    return factories[name](base_url)
