"""Every outcome class: each NIM code maps to its exception; only safe failures are retried."""

from __future__ import annotations

import httpx
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import make_client

pytestmark = pytest.mark.anyio

CODES = [
    (403, nim.PermissionDenied),
    (404, nim.NotFound),
    (414, nim.ParameterError),
    (431, nim.DuplicateRequest),
    (508, nim.RecallExpired),
    (500, nim.ServerError),
    (503, nim.ServerError),
    (514, nim.ServerError),
    (801, nim.NimAPIError),
]


@pytest.mark.parametrize(("code", "error"), CODES)
async def test_each_error_code_raises_its_class_with_code_desc_and_action(
    client: nim.NimClient, emulator: NimEmulator, code: int, error: type[nim.NimAPIError]
) -> None:
    """The answer's code picks the class; code, desc and action are kept; a send is tried once."""
    emulator.fail_next("msg/sendMsg", code, desc=f"failure {code}")
    with pytest.raises(error) as caught:
        await client.send_msg("alice", "bob", nim.Text("hi"))
    assert type(caught.value) is error
    assert (caught.value.code, caught.value.desc, caught.value.action) == (
        code,
        f"failure {code}",
        "msg/sendMsg",
    )
    assert len(emulator.calls) == 1


async def test_a_416_is_waited_out_and_retried_with_a_fresh_signature(
    emulator: NimEmulator,
) -> None:
    """416 means the server refused the call: the retry is safe, and newly signed."""
    emulator.fail_next("msg/sendAttachMsg", 416)
    async with make_client(
        emulator, rate_limits=nim.RateLimits.default().scaled(0.01), retry=nim.RetryPolicy()
    ) as client:
        await client.send_attach_msg("alice", "bob", "x")

    first, second = emulator.calls
    assert (first.code, second.code) == (416, 200)
    assert first.headers["nonce"] != second.headers["nonce"]
    assert first.headers["checksum"] != second.headers["checksum"]
    # The block (10 s scaled to 0.1 s) was waited out before the second attempt.
    assert second.at - first.at >= 0.1
    assert len(emulator.messages) == 1


async def test_a_block_that_outlasts_every_attempt_raises_rate_limited(
    emulator: NimEmulator,
) -> None:
    """After max_attempts 416 answers the caller gets RateLimited."""
    emulator.fail_next("msg/sendMsg", 416, count=10)
    async with make_client(
        emulator,
        rate_limits=nim.RateLimits.default().scaled(0.001),
        retry=nim.RetryPolicy(max_attempts=3),
    ) as client:
        with pytest.raises(nim.RateLimited):
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert [call.code for call in emulator.calls] == [416, 416, 416]


async def test_a_416_blocks_the_action_even_when_it_is_not_retried(
    emulator: NimEmulator,
) -> None:
    """With no attempts left the caller gets RateLimited, and the next call still waits."""
    emulator.fail_next("msg/sendMsg", 416)
    async with make_client(
        emulator,
        rate_limits=nim.RateLimits.default().scaled(0.02),  # block 0.2 s
        retry=nim.RetryPolicy(max_attempts=1),
    ) as client:
        with pytest.raises(nim.RateLimited):
            await client.send_msg("alice", "bob", nim.Text("first"))
        await client.send_msg("alice", "bob", nim.Text("second"))
    first, second = emulator.calls
    assert second.at - first.at >= 0.2


async def test_an_html_gateway_answer_is_a_server_error_with_its_status(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A 502 page from a gateway is a ServerError carrying .status, not a JSON crash."""
    emulator.fail_next_http("msg/sendMsg", 502)
    with pytest.raises(nim.ServerError) as caught:
        await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.status == 502
    assert caught.value.code == 502
    assert "502" in caught.value.desc
    assert len(emulator.calls) == 1


async def test_a_json_server_error_keeps_http_status_200(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A 500 code in a JSON answer came with HTTP 200."""
    emulator.fail_next("msg/sendMsg", 500)
    with pytest.raises(nim.ServerError) as caught:
        await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.status == 200


async def test_an_ambiguous_send_failure_is_not_retried_by_default(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """The server carried the send out and then failed: a retry would deliver it twice."""
    emulator.fail_next("msg/sendMsg", 500, after=True)
    with pytest.raises(nim.ServerError):
        await client.send_msg("alice", "bob", nim.Text("once"))
    assert len(emulator.calls) == 1
    assert len(emulator.messages) == 1


async def test_ambiguous_failures_are_retried_when_the_user_opts_in(
    emulator: NimEmulator,
) -> None:
    """retry_ambiguous=True accepts the risk of a duplicate: the send is tried again."""
    emulator.fail_next_http("msg/sendMsg", 503)
    async with make_client(
        emulator, retry=nim.RetryPolicy(retry_ambiguous=True, backoff_base=0)
    ) as client:
        result = await client.send_msg("alice", "bob", nim.Text("hi"))
    assert [call.status for call in emulator.calls] == [503, 200]
    assert emulator.messages[0].msgid == result.msgid
    assert emulator.calls[0].headers["nonce"] != emulator.calls[1].headers["nonce"]


async def test_a_parameter_error_from_the_server_is_not_retried(
    emulator: NimEmulator,
) -> None:
    """414 describes the request itself; trying again cannot help."""
    emulator.fail_next("msg/sendAttachMsg", 414, desc="check msgType")
    async with make_client(emulator, retry=nim.RetryPolicy(retry_ambiguous=True)) as client:
        with pytest.raises(nim.ParameterError, match="check msgType"):
            await client.send_attach_msg("alice", "bob", "x")
    assert len(emulator.calls) == 1


async def test_a_non_json_4xx_is_not_taken_for_a_nim_code() -> None:
    """An HTML 404 (a wrong base_url) is a plain NimAPIError, not NotFound."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>Not Found</html>")

    async with make_client(httpx.MockTransport(handler)) as client:
        with pytest.raises(nim.NimAPIError) as caught:
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert type(caught.value) is nim.NimAPIError
    assert caught.value.code == 404


async def test_a_malformed_single_answer_is_an_ambiguous_server_error() -> None:
    """Code 200 without `data` is a ServerError, not a KeyError that invites a resend."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": 200})

    async with make_client(httpx.MockTransport(handler)) as client:
        with pytest.raises(nim.ServerError, match="malformed") as caught:
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.action == "msg/sendMsg"
