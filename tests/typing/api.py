"""Type-checked, never run: the public API used the way users will (nox -s typecheck)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

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

        async def recipients() -> AsyncIterator[str]:
            yield "b"

        job = nim.BatchJob()
        batch: nim.BatchResult = await client.send_batch_msg(
            "a", recipients(), nim.Image("u", "m", "jpg", 1, 1, 1), return_msgid=True, job=job
        )
        ids: dict[str, int] = batch.msgids
        failed: list[nim.FailedChunk] = batch.failed
        progress: nim.Progress = job.progress
        attach_batch: nim.BatchResult = await client.send_batch_attach_msg(
            "a", ["b", "c"], "x", on_progress=lambda p: print(p.done), max_concurrency=2
        )
        attach_batch.raise_for_failures()
        url: str = await client.upload(b"x", type="image/png", https=True, expire_sec=86400)
        url = await client.file_upload(Path("f.bin"), tag="t")
        task: str = await client.clean_nos_files(dt.datetime(2026, 1, 1), 1767312000000)
        await client.recall(result.msgid, result.timetag, from_="a", to="b", ignore_time=True)
        sent: nim.Broadcast = await client.broadcast("hi", offline=True, target_os=["ios"])
        await client.delete_msg_one_way(msgid, timetag, from_="a", to="b", team=False)
        await client.delete_roam_session("a", "b", team=True)
        stats: dict[str, nim.LimiterStats] = client.limiter_stats()
        del msgid, timetag, ids, failed, progress, url, task, sent, stats


async def shared_budget() -> None:
    limiter: nim.Limiter = nim.RedisLimiter("redis://localhost:6379/0", prefix="nim")
    async with nim.NimClient("key", "secret", limiter=limiter) as client:
        await client.send_msg("a", "b", nim.Tip("t"))


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


def settings(client: nim.NimClient) -> None:
    client.retry = nim.RetryPolicy(max_attempts=1)
    client.rate_limits = None
    client.timeout = 5.0
    timeout: httpx.Timeout = client.timeout
    client.batch_size = 100
    key: str = client.app_key
    url: httpx.URL = client.base_url
    limiter: nim.Limiter = client.limiter
    own: nim.Limiter = nim.LocalLimiter()
    version: str = nim.__version__
    del timeout, key, url, limiter, own, version
    try:
        nim.NimClient("key", "secret", batch_size=501)
    except nim.ConfigurationError as error:
        message: str = str(error)
        del message


async def round_two(client: nim.NimClient) -> None:
    stamp: int = await client.mark_read_msg("b", "a", "client-id")
    unmarked: list[int] = await client.mark_read_team_msg("b", 1, [1, 2])
    await client.delete_msg(1, 2, from_="a", to="b", team=False)
    await client.delete_broadcast(3)
    await client.delete_roam_session("a", "t", super_team=True)
    batch = await client.send_batch_attach_msg("a", ["b"], "x", batch_size=5000)
    sent = await client.send_batch_msg("a", ["b"], nim.Text("t"), return_msgid=True)
    timetags: dict[str, int] = sent.timetags
    stopped: nim.NimError | None = batch.stopped
    again: list[str] = batch.resendable()
    hosts: tuple[str, ...] = nim.YUNXIN_CN_URLS
    failover = nim.NimClient("key", "secret", base_url=[*nim.YUNXIN_SG_URLS, nim.OVERSEAS_URL])
    del stamp, unmarked, timetags, stopped, again, hosts, failover


async def history(client: nim.NimClient) -> None:
    page: nim.SessionHistory = await client.query_session_msg(
        "a", "b", begin=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), end=1767312000000
    )
    while page.messages:
        last: nim.HistoryMessage = page.messages[-1]
        page = await client.query_session_msg(
            "a",
            "b",
            begin=0,
            end=last.sendtime,
            limit=50,
            ascending=False,
            types=[0, 100],
            include_no_sense=True,
            exclude_msgid=last.msgid,
        )
    size: int = page.size
    body: str | None = page.messages[0].body if page.messages else None
    client_id: str | None = page.messages[0].msgid_client if page.messages else None
    del size, body, client_id
