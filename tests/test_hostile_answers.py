"""Answers no NIM server should give, over loopback: every failure is a typed NimError
that says truthfully whether the call may have been carried out, and fails only its chunk."""

from __future__ import annotations

import gzip
import json
import time

import pytest

import nim_async as nim

from ._hostile import Piece, hostile_server, http_answer
from ._support import Wire, make_client

pytestmark = pytest.mark.anyio

SENT = http_answer(b'{"code":200,"data":{"msgid":1,"timetag":2,"antispam":false}}')

# name → the answer's pieces; each is read after the request may have been carried out.
UNREADABLE: dict[str, list[Piece]] = {
    "broken Content-Encoding": http_answer(
        b"not gzip at all", headers={"Content-Encoding": "gzip"}
    ),
    "JSON nested 100,000 deep": http_answer(b"[" * 100_000 + b"]" * 100_000),
    "a msgid past any float": http_answer(b'{"code":200,"data":{"msgid":1e400,"timetag":1}}'),
    "a code that is a boolean": http_answer(b'{"code":true}'),
    "no JSON at all": http_answer(b"<html>ok</html>"),
    "an answer of 50 MB": http_answer(b'{"code":200,"pad":"' + b"x" * 50_000_000 + b'"}'),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
async def test_an_unreadable_answer_is_a_malformed_answer_that_may_have_been_carried_out(
    wire: Wire,
    name: str,
) -> None:
    """The request went out: the error says so, and a send is not repeated."""
    calls: list[str] = []

    def script(path: str, body: bytes) -> list[Piece]:
        calls.append(path)
        return UNREADABLE[name]

    with hostile_server(script) as url:
        async with make_client(**wire, base_url=url) as client:
            with pytest.raises(nim.MalformedAnswer) as caught:
                await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.may_have_been_carried_out
    assert caught.value.action == "msg/sendMsg"
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (http_answer(b'{"code":504,"desc":"gateway"}', status=504), nim.ServerError),
        (http_answer(b"<h1>502</h1>", status=502), nim.ServerError),
        (http_answer(b'{"code":408,"desc":"timeout"}'), nim.NimAPIError),
        (http_answer(b'{"code":417,"desc":"duplicate operation"}'), nim.NimAPIError),
        (http_answer(b'{"code":999,"desc":"pack error"}'), nim.NimAPIError),
    ],
)
async def test_a_5xx_or_an_undocumented_code_may_have_been_carried_out(
    wire: Wire, answer: list[Piece], error: type[nim.NimAPIError]
) -> None:
    """Only documented refusals are "surely unsent"; a batch chunk says may-have-been-sent."""
    with hostile_server(lambda path, body: answer) as url:
        async with make_client(**wire, base_url=url) as client:
            with pytest.raises(error) as caught:
                await client.send_attach_msg("alice", "bob", "x")
            result = await client.send_batch_attach_msg("alice", ["bob", "carol"], "x")
    assert caught.value.may_have_been_carried_out
    (failed,) = result.failed
    assert failed.may_have_been_sent
    assert result.accepted == 0


@pytest.mark.parametrize("code", [403, 404, 414, 416, 508, 804])
async def test_a_documented_refusal_is_surely_unsent(wire: Wire, code: int) -> None:
    """A refusal made before acting: safe to resend once fixed."""
    refusal = http_answer(json.dumps({"code": code, "desc": "no"}).encode())
    with hostile_server(lambda path, body: refusal) as url:
        async with make_client(
            **wire, base_url=url, retry=nim.RetryPolicy(max_attempts=1)
        ) as client:
            result = await client.send_batch_attach_msg("alice", ["bob"], "x")
    (failed,) = result.failed
    assert isinstance(failed.error, nim.NimAPIError)
    assert not failed.error.may_have_been_carried_out
    assert not failed.may_have_been_sent


async def test_an_answer_naming_strangers_fails_its_chunk_as_maybe_sent(wire: Wire) -> None:
    """unregister naming accids the chunk did not carry contradicts the request."""
    strangers = http_answer(b'{"code":200,"unregister":["x","y","z"]}')
    with hostile_server(lambda path, body: strangers) as url:
        async with make_client(**wire, base_url=url) as client:
            result = await client.send_batch_attach_msg("alice", ["a"], "x")
    assert result.accepted == 0
    assert not result.ok
    (failed,) = result.failed
    assert isinstance(failed.error, nim.MalformedAnswer)
    assert failed.may_have_been_sent
    assert failed.accids == ("a",)


async def test_one_unreadable_chunk_fails_alone_and_the_job_goes_on(wire: Wire) -> None:
    """A broken answer mid-job: its chunk fails, every other chunk is accepted."""
    seen: list[int] = []

    def script(path: str, body: bytes) -> list[Piece]:
        seen.append(len(seen))
        if len(seen) == 2:
            return http_answer(b"garbage", headers={"Content-Encoding": "gzip"})
        return http_answer(gzip.compress(b'{"code":200}'), headers={"Content-Encoding": "gzip"})

    recipients = [f"u{number}" for number in range(10)]
    with hostile_server(script) as url:
        async with make_client(**wire, base_url=url, batch_size=2) as client:
            result = await client.send_batch_attach_msg("alice", recipients, "x", max_concurrency=1)
    assert result.calls == 5
    assert result.accepted == 8
    (failed,) = result.failed
    assert failed.accids == ("u2", "u3")
    assert failed.may_have_been_sent


async def test_a_dripping_answer_is_cut_at_the_attempt_deadline(wire: Wire) -> None:
    """A byte every 0.1 s keeps every read within its timeout; the attempt's deadline ends it."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
    drip = [(head, 0.0)] + [(b" ", 0.1)] * 1000
    with hostile_server(lambda path, body: drip) as url:
        # Four phases of 0.25 s: the whole attempt may take one second.
        async with make_client(**wire, base_url=url, timeout=0.25) as client:
            started = time.monotonic()
            with pytest.raises(nim.NimTimeout) as caught:
                await client.send_attach_msg("alice", "bob", "x")
            elapsed = time.monotonic() - started
    assert caught.value.may_have_reached_server
    # Without the deadline the drip lasts 100 s; the bound is loose on purpose.
    assert elapsed < 30


async def test_a_well_formed_answer_through_the_hostile_server_is_read(wire: Wire) -> None:
    """The server itself is sound: a normal answer gives a normal result."""
    with hostile_server(lambda path, body: SENT) as url:
        async with make_client(**wire, base_url=url) as client:
            sent = await client.send_msg("alice", "bob", nim.Text("hi"))
    assert (sent.msgid, sent.timetag) == (1, 2)
