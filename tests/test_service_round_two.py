"""What the official SDKs know: batch timetags, the four further endpoints, the new
keywords, 5000-recipient notification batches, strict answers, hosts and clocks."""

from __future__ import annotations

import json
import logging

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._hostile import Piece, hostile_server, http_answer
from ._support import APP_KEY, APP_SECRET, free_port, make_client

pytestmark = pytest.mark.anyio


async def test_every_copy_of_a_batch_message_can_be_recalled_from_the_result(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """sendBatchMsg answers a timetag (seed 003): msgids and timetags recall each copy."""
    result = await client.send_batch_msg(
        "alice", ["bob", "carol"], nim.Text("oops"), return_msgid=True
    )
    assert set(result.timetags) == set(result.msgids) == {"bob", "carol"}
    for accid in ("bob", "carol"):
        await client.recall(result.msgids[accid], result.timetags[accid], from_="alice", to=accid)
    assert all(message.recalled for message in emulator.messages)


async def test_a_broadcast_reads_its_sender_from_msg_from(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Both official SDKs read the sender from msg.from."""
    sent = await client.broadcast("maintenance", from_="ops")
    assert sent.from_ == "ops"
    assert emulator.calls[0].answer["msg"]["from"] == "ops"  # type: ignore[index]


@pytest.mark.parametrize(
    ("antispam", "expected"), [("false", False), ("true", True), (False, False), (True, True)]
)
async def test_booleans_in_answers_are_read_strictly(antispam: object, expected: bool) -> None:
    """The string "false" is False, never bool("false")."""
    body = {"code": 200, "data": {"msgid": 1, "timetag": 2, "antispam": antispam}}
    answer = http_answer(json.dumps(body).encode())
    with hostile_server(lambda path, request: answer) as url:
        async with make_client(base_url=url) as client:
            sent = await client.send_msg("alice", "bob", nim.Text("hi"))
    assert sent.antispam is expected


async def test_a_boolean_that_is_no_boolean_is_a_malformed_answer() -> None:
    """ "maybe" cannot be read as a flag: MalformedAnswer, may have been carried out."""
    body = {"code": 200, "data": {"msgid": 1, "timetag": 2, "antispam": "maybe"}}
    answer = http_answer(json.dumps(body).encode())
    with hostile_server(lambda path, request: answer) as url:
        async with make_client(base_url=url) as client:
            with pytest.raises(nim.MalformedAnswer):
                await client.send_msg("alice", "bob", nim.Text("hi"))


async def test_read_receipts_and_deletes(client: nim.NimClient, emulator: NimEmulator) -> None:
    """markReadMsg, markReadTeamMsg, delMsg and delBroadcastMsgById, as the SDKs call them."""
    stamp = await client.mark_read_msg("bob", "alice", "client-id-1")
    assert isinstance(stamp, int)
    team_message = await client.send_msg("alice", "team-1", nim.Text("hi all"), team=True)
    unmarked = await client.mark_read_team_msg("bob", 1, [team_message.msgid, 999])
    assert isinstance(unmarked, list)
    sent = await client.send_msg("alice", "bob", nim.Text("delete me"))
    await client.delete_msg(sent.msgid, sent.timetag, from_="alice", to="bob")
    broadcast = await client.broadcast("gone soon")
    await client.delete_broadcast(broadcast.broadcast_id)
    forms = {call.action: call.form for call in emulator.calls}
    assert forms["msg/markReadMsg"] == {"from": "bob", "to": "alice", "msgidClient": "client-id-1"}
    assert forms["msg/markReadTeamMsg"] == {
        "accid": "bob",
        "tid": "1",
        "msgids": json.dumps([team_message.msgid, 999], separators=(",", ":")),
    }
    assert forms["msg/delMsg"] == {
        "deleteMsgid": str(sent.msgid),
        "timetag": str(sent.timetag),
        "type": "7",
        "from": "alice",
        "to": "bob",
    }
    assert forms["history/delBroadcastMsgById"] == {"broadcastId": str(broadcast.broadcast_id)}
    assert {call.code for call in emulator.calls} == {200}


async def test_the_session_history_as_the_sdks_ask_for_it(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """history/querySessionMsg with every row of Java SDK QuerySessionHistoryMessageRequestV1."""
    sent = await client.send_msg("alice", "bob", nim.Text("hi"))
    page = await client.query_session_msg(
        "bob",
        "alice",
        begin=sent.timetag,
        end=sent.timetag + 1,
        limit=10,
        ascending=True,
        types=[0, 1],
        include_no_sense=True,
        exclude_msgid=1,
    )
    assert emulator.calls[-1].form == {
        "from": "bob",
        "to": "alice",
        "begintime": str(sent.timetag),
        "endtime": str(sent.timetag + 1),
        "limit": "10",
        "reverse": "1",
        "type": "0,1",
        "includeNoSenseMsg": "true",
        "excludeMsgid": "1",
    }
    assert [(m.from_, m.msgid, m.type) for m in page.messages] == [("alice", sent.msgid, 0)]
    assert page.size == 1


async def test_the_new_keywords_go_on_the_wire(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """The parameters the official SDKs send, each under its NIM name."""
    await client.send_msg(
        "alice",
        "bob",
        nim.Text("hi"),
        yidun_anti_spam_ext={"k": "v"},
        async_=True,
        robot_account="robot",
        robot_topic="topic",
        robot_function="fn",
        robot_custom_content="custom",
    )
    await client.send_batch_msg(
        "alice", ["bob"], nim.Text("hi"), sender_no_sense=True, yidun_anti_spam_ext={"k": 1}
    )
    await client.send_attach_msg("alice", "bob", "x", check_accid_async=True)
    await client.send_batch_attach_msg("alice", ["bob"], "x", check_accid_async=False)
    await client.delete_roam_session("alice", "super-1", super_team=True)
    forms = [call.form for call in emulator.calls]
    assert {
        key: forms[0][key]
        for key in (
            "yidunAntiSpamExt",
            "async",
            "robotAccount",
            "robotTopic",
            "robotFunction",
            "robotCustomContent",
        )
    } == {
        "yidunAntiSpamExt": '{"k":"v"}',
        "async": "true",
        "robotAccount": "robot",
        "robotTopic": "topic",
        "robotFunction": "fn",
        "robotCustomContent": "custom",
    }
    assert (forms[1]["msgSenderNoSense"], forms[1]["yidunAntiSpamExt"]) == ("1", '{"k":1}')
    assert forms[2]["checkAccidAsyncEnable"] == "true"
    assert forms[3]["checkAccidAsyncEnable"] == "false"
    assert forms[4]["type"] == "3"
    assert {call.code for call in emulator.calls} == {200}


async def test_team_and_super_team_together_are_refused(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A session is p2p, team or super team: never two at once."""
    with pytest.raises(nim.InvalidRequest, match="type"):
        await client.delete_roam_session("alice", "t", team=True, super_team=True)
    assert emulator.calls == []


async def test_a_notification_batch_takes_up_to_5000_recipients_per_call(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """batch_size=5000 for sendBatchAttachMsg alone (Java SDK: "最多 5000 人")."""
    accids = [f"u{number}" for number in range(5001)]
    result = await client.send_batch_attach_msg("alice", accids, "x", batch_size=5000)
    assert result.accepted == 5001
    assert [len(json.loads(call.form["toAccids"])) for call in emulator.calls] == [5000, 1]


@pytest.mark.parametrize("batch_size", [0, 5001, 2.0])
async def test_a_notification_batch_size_past_5000_is_a_configuration_error(
    client: nim.NimClient, emulator: NimEmulator, batch_size: object
) -> None:
    """Refused before anything is sent."""
    with pytest.raises(nim.ConfigurationError, match="batch_size"):
        await client.send_batch_attach_msg("alice", ["bob"], "x", batch_size=batch_size)  # type: ignore[arg-type]
    assert emulator.calls == []


async def test_an_unreachable_host_is_passed_over_for_the_next(emulator: NimEmulator) -> None:
    """Connection refused: nothing left the machine, so the next host is tried, and kept."""
    dead = f"http://127.0.0.1:{free_port()}/nimserver/"
    with emulator.serve() as alive:
        async with make_client(base_url=[dead, alive]) as client:
            await client.send_msg("alice", "bob", nim.Text("one"))
            assert str(client.base_url) == alive
            await client.send_msg("alice", "bob", nim.Text("two"))
    assert [call.code for call in emulator.calls] == [200, 200]


async def test_a_host_that_answered_badly_is_not_passed_over() -> None:
    """After a request may have reached a server, never another host: no second delivery."""
    seen: list[str] = []

    def broken(path: str, request: bytes) -> list[Piece]:
        seen.append(path)
        return [(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", 0.0)]  # then hangs up

    with hostile_server(broken) as first, hostile_server(broken) as second:
        async with make_client(base_url=[first, second]) as client:
            with pytest.raises(nim.NimConnectionError) as caught:
                await client.send_msg("alice", "bob", nim.Text("hi"))
    assert caught.value.may_have_reached_server
    assert len(seen) == 1


@pytest.mark.parametrize("base_url", [[], ["ftp://x/"], "not a url", ["https://ok/", 3]])
def test_a_bad_base_url_is_a_configuration_error(base_url: object) -> None:
    """One URL or a non-empty sequence of http(s) URLs."""
    with pytest.raises(nim.ConfigurationError, match="base_url"):
        nim.NimClient(APP_KEY, APP_SECRET, base_url=base_url)  # type: ignore[arg-type]


async def test_a_skewed_clock_is_corrected_from_the_date_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ten minutes off: the first call's 414 shows the skew, is retried once, and succeeds."""
    caplog.set_level(logging.WARNING, logger="nim_async")
    emulator = NimEmulator(APP_KEY, APP_SECRET, clock_skew=600)
    async with make_client(emulator) as client:
        await client.send_msg("alice", "bob", nim.Text("hi"))
        await client.send_msg("alice", "bob", nim.Text("again"))
    assert [call.code for call in emulator.calls] == [414, 200, 200]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "clock" in warnings[0]


async def test_a_skewed_clock_without_retries_fails_naming_the_clock() -> None:
    """With one attempt the call fails, and the error says the clock is off."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, clock_skew=-900)
    async with make_client(emulator, retry=nim.RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(nim.ClockSkew, match="clock"):
            await client.send_msg("alice", "bob", nim.Text("hi"))
        await client.send_msg("alice", "bob", nim.Text("now signed right"))
    assert [call.code for call in emulator.calls] == [414, 200]


async def test_a_small_clock_difference_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twenty seconds off is well within the server's tolerance: no correction, no warning."""
    caplog.set_level(logging.WARNING, logger="nim_async")
    emulator = NimEmulator(APP_KEY, APP_SECRET, clock_skew=20)
    async with make_client(emulator) as client:
        await client.send_attach_msg("alice", "bob", "x")
    assert [call.code for call in emulator.calls] == [200]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
