"""Raw HTTP to the emulator for its own tests: httpx requests signed by hand.

The signature is computed here as the facts file says, sha1(AppSecret + Nonce +
CurTime) in lowercase hex, and never with nim_async's signing code, so that
these tests check the emulator against the facts file, not against the client.
"""

from __future__ import annotations

import hashlib
import time

import httpx

from nim_async.testing import NimEmulator

KEY, SECRET = "test-app-key", "test-app-secret"
BASE = "https://api.netease.im/nimserver/"
TEXT_BODY = '{"msg":"hi"}'


def signed(
    *, nonce: str = "nonce-1", cur_time: str | None = None, secret: str = SECRET, key: str = KEY
) -> dict[str, str]:
    """Headers signed as the facts file says: sha1(AppSecret + Nonce + CurTime), hex.

    CurTime is the real clock's seconds, read at each call, unless ``cur_time`` is given.
    """
    cur = str(int(time.time())) if cur_time is None else cur_time
    digest = hashlib.sha1(f"{secret}{nonce}{cur}".encode()).hexdigest()
    return {"AppKey": key, "Nonce": nonce, "CurTime": cur, "CheckSum": digest}


def form(**fields: str) -> dict[str, str]:
    """Form fields from keywords; ``from_`` is the ``from`` field."""
    return {("from" if name == "from_" else name): value for name, value in fields.items()}


async def post(
    emu: NimEmulator,
    action: str,
    data: dict[str, str] | None = None,
    *,
    files: dict[str, bytes] | None = None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """POST ``<action>.action`` through the emulator's in-process transport.

    ``headers`` default to a fresh ``signed()``; pass others to test the signature checks.
    """
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as client:
        return await client.post(
            f"{action}.action",
            data=data,
            files=files,
            content=content,
            headers=signed() if headers is None else headers,
        )


async def call(
    emu: NimEmulator, action: str, fields: dict[str, str], files: dict[str, bytes] | None = None
) -> dict[str, object]:
    """A signed call that must answer HTTP 200 with JSON in utf-8; returns the JSON answer."""
    response = await post(emu, action, fields, files=files)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    answer: dict[str, object] = response.json()
    return answer


async def send(emu: NimEmulator, to: str = "bob", **fields: str) -> dict[str, object]:
    """``call`` of msg/sendMsg: TEXT_BODY from alice to ``to``; ``fields`` add or replace."""
    text = {"from": "alice", "ope": "0", "to": to, "type": "0", "body": TEXT_BODY}
    return await call(emu, "msg/sendMsg", text | form(**fields))


def data(answer: dict[str, object]) -> dict[str, object]:
    """The answer's ``data`` object."""
    inner = answer["data"]
    assert isinstance(inner, dict)
    return inner
