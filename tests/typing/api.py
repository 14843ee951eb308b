"""Type-checked, never run: the public API used the way users will (nox -s typecheck)."""

from __future__ import annotations

import httpx

import nim_async as nim
from nim_async.testing import NimEmulator


async def every_endpoint(transport: httpx.AsyncBaseTransport) -> None:
    limits: nim.RateLimits = (
        nim.RateLimits.default().with_action("sendMsg", nim.Rate(500, 1), block=10).scaled(0.5)
    )
    async with nim.NimClient(
        "key",
        "secret",
        base_url=nim.OVERSEAS_URL,
        rate_limits=limits,
        retry=nim.RetryPolicy(max_attempts=2, retry_ambiguous=False),
        timeout=httpx.Timeout(5.0),
        transport=transport,
    ) as client:
        result: nim.SendResult = await client.send_msg(
            "a", "b", nim.Text("hi"), option=nim.MessageOption(roam=False), push=nim.Push("p")
        )
        msgid: int = result.msgid
        timetag: int = result.timetag
        await client.send_attach_msg("a", "b", {"k": 1}, offline=True)
        del msgid, timetag


def emulator_records() -> None:
    emulator = NimEmulator("key", "secret", accounts=["a", "b"])
    transport: httpx.AsyncBaseTransport = emulator.transport()
    emulator.fail_next("msg/sendMsg", 500, after=True)
    for call in emulator.calls:
        code: int | None = call.code
        form: dict[str, str] = call.form
        del code, form
    del transport


def errors(error: nim.NimError) -> None:
    if isinstance(error, nim.NimAPIError):
        code: int = error.code
        desc: str = error.desc
        action: str = error.action
        del code, desc, action
    if isinstance(error, nim.NimConnectionError):
        reached: bool = error.may_have_reached_server
        del reached
    if isinstance(error, nim.InvalidRequest):
        parameter: str = error.parameter
        del parameter
