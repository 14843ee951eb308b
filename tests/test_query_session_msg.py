"""history/querySessionMsg end to end: the client's keywords, the emulator's history, the answer.

Parameters and rules as the Java SDK's QuerySessionHistoryMessageRequestV1 and
NetEase's doc page "查询单聊云端历史消息" give them; every call goes through httpx
to the emulator, and the tests read what it received and answered.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from . import _raw as raw
from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

ACTION = "history/querySessionMsg"
FAR = 2**62  # an endtime after every message


async def query(client: nim.NimClient, *args: str, **kwargs: Any) -> nim.SessionHistory:
    """query_session_msg over all time unless begin/end are given."""
    kwargs.setdefault("begin", 0)
    kwargs.setdefault("end", FAR)
    return await client.query_session_msg(*(args or ("alice", "bob")), **kwargs)


def bodies(history: nim.SessionHistory) -> list[str]:
    """The text of each text message of the page, in its order."""
    return [json.loads(message.body or "{}")["msg"] for message in history.messages]


def last_call(emulator: NimEmulator) -> tuple[dict[str, str], dict[str, Any]]:
    """The form and the JSON answer of the emulator's last call."""
    call = emulator.calls[-1]
    assert call.action == ACTION
    assert isinstance(call.answer, dict)
    return call.form, call.answer


# --- what goes on the wire and what comes back ------------------------------------


async def test_both_directions_come_back_newest_first(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """from→to and to→from, newest first (reverse=2, the server's default), with every field."""
    first = await client.send_msg("alice", "bob", nim.Text("one"))
    second = await client.send_msg("bob", "alice", nim.Text("two"))
    await client.send_msg("alice", "carol", nim.Text("another session"))
    history = await client.query_session_msg("alice", "bob", begin=0, end=FAR)
    form, answer = last_call(emulator)
    assert form == {
        "from": "alice",
        "to": "bob",
        "begintime": "0",
        "endtime": str(FAR),
        "limit": "100",
    }
    assert answer["size"] == 2
    assert isinstance(answer["msgs"], list)
    assert history.size == 2
    assert [(m.from_, m.msgid, m.sendtime) for m in history.messages] == [
        ("bob", second.msgid, second.timetag),
        ("alice", first.msgid, first.timetag),
    ]
    newest = history.messages[0]
    assert (newest.type, newest.body, newest.from_client_type) == (0, '{"msg":"two"}', 32)
    assert newest.msgid_client == emulator.messages[1].msgid_client
    assert newest.msgid_client is not None
    assert newest.msgid_client == newest.msgid_client.lower()


async def test_ascending_sends_reverse_1_and_reads_oldest_first(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """ascending=True is reverse=1 ("按时间正序"); the default sends no reverse at all."""
    for text in ("a", "b", "c"):
        await client.send_msg("alice", "bob", nim.Text(text))
    assert bodies(await query(client, ascending=True)) == ["a", "b", "c"]
    assert last_call(emulator)[0]["reverse"] == "1"
    assert bodies(await query(client)) == ["c", "b", "a"]
    assert "reverse" not in last_call(emulator)[0]


async def test_limit_cuts_the_page(client: nim.NimClient, emulator: NimEmulator) -> None:
    """limit=2 of three messages: the newest two, size 2."""
    for text in ("a", "b", "c"):
        await client.send_msg("alice", "bob", nim.Text(text))
    history = await query(client, limit=2)
    assert (history.size, bodies(history)) == (2, ["c", "b"])
    assert last_call(emulator)[0]["limit"] == "2"


async def test_types_keep_only_those_message_types(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """types=[0, 100] is type=0,100: the image and the tip stay out."""
    await client.send_msg("alice", "bob", nim.Text("t"))
    await client.send_msg("alice", "bob", nim.Image("u", "m", "jpg", 1, 1, 1))
    await client.send_msg("bob", "alice", nim.Custom({"k": 1}))
    await client.send_msg("alice", "bob", nim.Tip("tip"))
    history = await query(client, types=[0, 100], ascending=True)
    assert last_call(emulator)[0]["type"] == "0,100"
    assert [(m.type, m.body) for m in history.messages] == [(0, '{"msg":"t"}'), (100, '{"k":1}')]


async def test_begin_and_end_are_inclusive_and_take_aware_datetimes(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A range ending at a message's sendtime holds it; a datetime goes as epoch milliseconds."""
    early = await client.send_msg("alice", "bob", nim.Text("early"))
    emulator.advance(60)
    late = await client.send_msg("bob", "alice", nim.Text("late"))
    assert bodies(await query(client, end=early.timetag)) == ["early"]
    assert bodies(await query(client, begin=late.timetag)) == ["late"]
    begin = dt.datetime.fromtimestamp(early.timetag / 1000 - 1, dt.timezone.utc)
    end = dt.datetime.fromtimestamp((early.timetag + late.timetag) / 2000, dt.timezone.utc)
    assert bodies(await query(client, begin=begin, end=end)) == ["early"]
    form = last_call(emulator)[0]
    assert (form["begintime"], form["endtime"]) == (
        str(int(begin.timestamp() * 1000)),
        str(int(end.timestamp() * 1000)),
    )


@pytest.mark.parametrize("as_string", [False, True], ids=["msgs-list", "msgs-string"])
async def test_msgs_are_read_as_an_array_or_as_a_string_holding_one(as_string: bool) -> None:
    """Both shapes the official SDKs accept give the same page."""
    emulator = NimEmulator(APP_KEY, APP_SECRET, msgs_as_string=as_string)
    async with make_client(emulator) as client:
        sent = await client.send_msg("alice", "bob", nim.Text("hi"))
        history = await query(client)
    msgs = last_call(emulator)[1]["msgs"]
    assert isinstance(msgs, str) is as_string
    assert [(m.msgid, m.body) for m in history.messages] == [(sent.msgid, '{"msg":"hi"}')]


# --- what the history holds -----------------------------------------------------------


async def test_every_copy_of_a_batch_message_is_in_its_session(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """sendBatchMsg stores one message per recipient, each in its own session."""
    result = await client.send_batch_msg(
        "alice", ["bob", "carol"], nim.Text("all"), return_msgid=True
    )
    for accid in ("bob", "carol"):
        history = await query(client, "alice", accid)
        assert [(m.msgid, m.from_, m.sendtime) for m in history.messages] == [
            (result.msgids[accid], "alice", result.timetags[accid])
        ]


async def test_system_notifications_are_never_in_the_history(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """sendAttachMsg and sendBatchAttachMsg are notifications, not messages: they do not appear."""
    await client.send_attach_msg("alice", "bob", {"k": 1})
    await client.send_batch_attach_msg("alice", ["bob"], "x")
    await client.send_attach_msg("bob", "alice", "y")
    history = await query(client)
    assert (history.size, history.messages) == (0, ())
    assert len(emulator.messages) == 3
    assert last_call(emulator)[1] == {"code": 200, "size": 0, "msgs": []}


async def test_a_message_sent_with_history_false_is_not_kept(client: nim.NimClient) -> None:
    """option history:false keeps the message out of the cloud history."""
    await client.send_msg("alice", "bob", nim.Text("gone"), option=nim.MessageOption(history=False))
    await client.send_batch_msg(
        "alice", ["bob"], nim.Text("gone too"), option=nim.MessageOption(history=False)
    )
    await client.send_msg(
        "alice", "bob", nim.Text("kept"), option=nim.MessageOption(history=True, roam=False)
    )
    assert bodies(await query(client)) == ["kept"]


async def test_team_messages_are_not_in_a_one_to_one_session(client: nim.NimClient) -> None:
    """A team message to a tid that happens to equal the accid stays out."""
    await client.send_msg("alice", "bob", nim.Text("team"), team=True)
    await client.send_msg("alice", "bob", nim.Text("p2p"))
    assert bodies(await query(client)) == ["p2p"]


async def test_recalled_and_deleted_messages_never_come_back(client: nim.NimClient) -> None:
    """Two-way recalled (msg/recall) and deleted (msg/delMsg) messages are gone, even with
    include_no_sense."""
    recalled = await client.send_msg("alice", "bob", nim.Text("recalled"))
    deleted = await client.send_msg("alice", "bob", nim.Text("deleted"))
    await client.send_msg("alice", "bob", nim.Text("kept"))
    await client.recall(recalled.msgid, recalled.timetag, from_="alice", to="bob")
    await client.delete_msg(deleted.msgid, deleted.timetag, from_="alice", to="bob")
    assert bodies(await query(client)) == ["kept"]
    assert bodies(await query(client, include_no_sense=True)) == ["kept"]


async def test_no_sense_messages_come_back_only_when_asked_for(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Deleted one way, or sent with a no-sense flag: only with includeNoSenseMsg=true."""
    one_way = await client.send_msg("alice", "bob", nim.Text("one way"))
    await client.delete_msg_one_way(one_way.msgid, one_way.timetag, from_="alice", to="bob")
    await client.send_msg("alice", "bob", nim.Text("sender"), sender_no_sense=True)
    await client.send_msg("alice", "bob", nim.Text("receiver"), receiver_no_sense=True)
    await client.send_msg("alice", "bob", nim.Text("plain"), sender_no_sense=False)
    assert bodies(await query(client, ascending=True)) == ["plain"]
    assert "includeNoSenseMsg" not in last_call(emulator)[0]
    every = await query(client, ascending=True, include_no_sense=True)
    assert last_call(emulator)[0]["includeNoSenseMsg"] == "true"
    assert bodies(every) == ["one way", "sender", "receiver", "plain"]


async def test_paging_with_exclude_msgid_reads_every_message_once(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """Five messages in one millisecond, pages of two: the docstring's recipe loses and
    repeats nothing."""
    for number in range(5):
        await client.send_msg(
            "alice" if number % 2 else "bob",
            "bob" if number % 2 else "alice",
            nim.Text(str(number)),
        )
    stamp = emulator.messages[0].timetag
    for message in emulator.messages:
        message.timetag = stamp  # the extreme case excludeMsgid is for
    seen: list[str] = []
    end: int = FAR
    anchor: int | None = None
    while True:
        page = await query(client, end=end, limit=2, exclude_msgid=anchor)
        if not page.messages:
            break
        seen += bodies(page)
        end, anchor = page.messages[-1].sendtime, page.messages[-1].msgid
    assert seen == ["4", "3", "2", "1", "0"]
    ids = [str(message.msgid) for message in emulator.messages]
    anchors = [call.form.get("excludeMsgid") for call in emulator.calls if call.action == ACTION]
    assert anchors == [None, ids[3], ids[1], ids[0]]


async def test_paging_ascending_moves_begin(client: nim.NimClient, emulator: NimEmulator) -> None:
    """Oldest first, the next page starts at the last sendtime, after the last msgid."""
    for number in range(3):
        await client.send_msg("alice", "bob", nim.Text(str(number)))
        emulator.advance(1)
    first = await query(client, limit=2, ascending=True)
    last = first.messages[-1]
    rest = await query(
        client, begin=last.sendtime, limit=2, ascending=True, exclude_msgid=str(last.msgid)
    )
    assert (bodies(first), bodies(rest)) == (["0", "1"], ["2"])
    assert last_call(emulator)[0]["excludeMsgid"] == str(last.msgid)


# --- refusals before the wire, and the same values sent raw -------------------------

REFUSED = [
    ("limit", {"limit": 0}),
    ("limit", {"limit": 101}),
    ("limit", {"limit": True}),
    ("limit", {"limit": 1.0}),
    ("limit", {"limit": None}),
    ("endtime", {"begin": 5, "end": 5}),
    ("endtime", {"begin": 6, "end": 5}),
    ("begintime", {"begin": 1.5}),
    ("begintime", {"begin": "1"}),
    ("endtime", {"end": None}),
    ("endtime", {"end": dt.date(2026, 1, 1)}),
    ("type", {"types": [7]}),
    ("type", {"types": [0, 12]}),
    ("type", {"types": []}),
    ("type", {"types": "0,1"}),
    ("type", {"types": [True]}),
    ("type", {"types": [10**400]}),
    ("type", {"types": {0: 1}}),
    ("reverse", {"ascending": "true"}),
    ("includeNoSenseMsg", {"include_no_sense": 1}),
    ("excludeMsgid", {"exclude_msgid": "abc"}),
    ("excludeMsgid", {"exclude_msgid": 2**63}),
    ("excludeMsgid", {"exclude_msgid": 1.0}),
    ("from", {"from_": ""}),
    ("from", {"from_": "a" * 33}),
    ("to", {"to": "b" * 33}),
    ("to", {"to": ["bob"]}),
]


@pytest.mark.parametrize(("parameter", "change"), REFUSED, ids=[f"{p}-{c}" for p, c in REFUSED])
async def test_bad_input_is_refused_before_anything_is_sent(
    client: nim.NimClient, emulator: NimEmulator, parameter: str, change: dict[str, Any]
) -> None:
    """InvalidRequest names the NIM parameter and what it must be; the emulator saw nothing."""
    arguments: dict[str, Any] = {"from_": "alice", "to": "bob", "begin": 1, "end": 2, **change}
    with pytest.raises(nim.InvalidRequest) as caught:
        await client.query_session_msg(**arguments)
    assert caught.value.parameter == parameter
    assert "must be" in str(caught.value)
    assert emulator.calls == []


@pytest.mark.parametrize(
    "change",
    [
        {"limit": 1},
        {"limit": 100},
        {"begin": 4, "end": 5},
        {"types": [0, 1, 2, 3, 4, 5, 6, 10, 11, 100]},
        {"exclude_msgid": "0"},
    ],
)
async def test_the_boundary_values_are_accepted(
    client: nim.NimClient, emulator: NimEmulator, change: dict[str, Any]
) -> None:
    """Exactly at each limit: sent, and the emulator answers 200."""
    await client.query_session_msg(
        **{"from_": "alice", "to": "bob", "begin": 1, "end": 2, **change}
    )
    assert [call.code for call in emulator.calls] == [200]


VALID = {"from": "alice", "to": "bob", "begintime": "1", "endtime": "2", "limit": "100"}
RAW_REFUSED = [
    ("limit", {"limit": "0"}),
    ("limit", {"limit": "101"}),
    ("limit", {"limit": "-1"}),
    ("limit", {"limit": "ten"}),
    ("limit", {"limit": None}),
    ("endtime", {"begintime": "2", "endtime": "2"}),
    ("endtime", {"begintime": "3"}),
    ("begintime", {"begintime": None}),
    ("endtime", {"endtime": "soon"}),
    ("reverse", {"reverse": "0"}),
    ("reverse", {"reverse": "3"}),
    ("reverse", {"reverse": "true"}),
    ("type", {"type": "7"}),
    ("type", {"type": "0,,1"}),
    ("type", {"type": "0, 1"}),
    ("type", {"type": ""}),
    ("includeNoSenseMsg", {"includeNoSenseMsg": "1"}),
    ("excludeMsgid", {"excludeMsgid": "abc"}),
    ("from", {"from": None}),
    ("to", {"to": "b" * 33}),
]


@pytest.mark.parametrize(
    ("parameter", "change"), RAW_REFUSED, ids=[f"{p}-{c}" for p, c in RAW_REFUSED]
)
async def test_the_emulator_answers_414_naming_the_parameter(
    parameter: str, change: dict[str, str | None]
) -> None:
    """Sent raw, past the client, every rule is the server's 414 naming its parameter."""
    emulator = NimEmulator(raw.KEY, raw.SECRET)
    fields = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    answer = await raw.call(emulator, ACTION, fields)
    assert answer["code"] == 414
    assert parameter in str(answer["desc"])


async def test_begintime_not_before_endtime_is_bad_time() -> None:
    """The Java SDK's documented answer: {"desc": "bad time", "code": 414}."""
    emulator = NimEmulator(raw.KEY, raw.SECRET)
    answer = await raw.call(emulator, ACTION, {**VALID, "begintime": "2"})
    assert answer["code"] == 414
    assert str(answer["desc"]).startswith("bad time")


async def test_every_optional_parameter_at_a_valid_value_is_accepted() -> None:
    """reverse 1 and 2, every type, includeNoSenseMsg false, an unknown excludeMsgid."""
    emulator = NimEmulator(raw.KEY, raw.SECRET)
    for reverse in ("1", "2"):
        fields = {
            **VALID,
            "reverse": reverse,
            "type": "0,1,2,3,4,5,6,10,11,100",
            "includeNoSenseMsg": "false",
            "excludeMsgid": "42",
        }
        assert await raw.call(emulator, ACTION, fields) == {"code": 200, "size": 0, "msgs": []}


# --- reading the answer -------------------------------------------------------------


def answering(body: dict[str, Any]) -> httpx.MockTransport:
    """A transport that answers every request with ``body`` as JSON."""
    return httpx.MockTransport(lambda request: httpx.Response(200, json=body))


async def read(body: dict[str, Any]) -> nim.SessionHistory:
    """What query_session_msg makes of ``body``."""
    async with make_client(answering(body)) as client:
        return await client.query_session_msg("alice", "bob", begin=1, end=2)


async def test_a_body_sent_as_an_object_is_read_as_json_text() -> None:
    """As both official SDKs do: an object body becomes its JSON text; absent fields are None."""
    message = {"from": "bob", "msgid": "7", "sendtime": 5, "type": 0, "body": {"msg": "好"}}
    history = await read({"code": 200, "size": 1, "msgs": [message]})
    assert history.messages == (
        nim.HistoryMessage(
            from_="bob",
            msgid=7,
            msgid_client=None,
            sendtime=5,
            type=0,
            from_client_type=None,
            body='{"msg":"好"}',
        ),
    )


@pytest.mark.parametrize(
    ("body", "size"),
    [
        ({"code": 200}, 0),
        ({"code": 200, "msgs": None, "size": 0}, 0),
        ({"code": 200, "msgs": ""}, 0),
        ({"code": 200, "size": 3, "msgs": "[]"}, 3),
    ],
)
async def test_an_answer_without_messages_is_an_empty_page(body: dict[str, Any], size: int) -> None:
    """msgs absent, null or an empty string: no messages, as the SDKs read it."""
    history = await read(body)
    assert (history.size, history.messages) == (size, ())


GOOD = {
    "from": "bob",
    "msgid": 1,
    "msgidclient": "c",
    "sendtime": 2,
    "type": 0,
    "fromclienttype": 32,
    "body": "{}",
}


@pytest.mark.parametrize(
    "body",
    [
        {"code": 200, "msgs": "not json"},
        {"code": 200, "msgs": {"from": "bob"}},
        {"code": 200, "msgs": "{}"},
        {"code": 200, "msgs": ["text"]},
        {"code": 200, "msgs": "[" * 100_000 + "]" * 100_000},
        {"code": 200, "msgs": [{**GOOD, "msgid": "x"}]},
        {"code": 200, "msgs": [{**GOOD, "msgid": True}]},
        {"code": 200, "msgs": [{**GOOD, "from": 5}]},
        {"code": 200, "msgs": [{**GOOD, "sendtime": 1.5}]},
        {"code": 200, "msgs": [{**GOOD, "msgidclient": 5}]},
        {"code": 200, "msgs": [{k: v for k, v in GOOD.items() if k != "type"}]},
        {"code": 200, "size": "many", "msgs": [GOOD]},
    ],
    ids=lambda body: str(body)[:60],
)
async def test_a_malformed_answer_is_malformed_answer(body: dict[str, Any]) -> None:
    """Code 200 that cannot be read: MalformedAnswer naming the action, never a bare KeyError."""
    with pytest.raises(nim.MalformedAnswer) as caught:
        await read(body)
    assert caught.value.action == ACTION


# --- retries and rate limits ---------------------------------------------------------


async def test_an_ambiguous_failure_is_retried(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A query changes nothing: a 500 after it was carried out is asked again."""
    await client.send_msg("alice", "bob", nim.Text("hi"))
    emulator.fail_next(ACTION, 500, after=True)
    assert bodies(await query(client)) == ["hi"]
    assert [call.code for call in emulator.calls if call.action == ACTION] == [500, 200]


def test_the_default_limits_give_it_100_a_second_blocked_10_s() -> None:
    """NetEase's doc page: 100 calls/s per app, a 10 s block; RateLimits.default() applies it."""
    limits = nim.RateLimits.default()
    expected = nim.ActionLimits((nim.Rate(100, 1),), 10)
    assert limits.for_action(ACTION) == limits.for_action("querySessionMsg") == expected


async def test_the_emulator_blocks_the_101st_call_under_the_default_limits() -> None:
    """The emulator under RateLimits.default() (stretched tenfold: 100 per 10 s) answers 416."""
    emulator = NimEmulator(raw.KEY, raw.SECRET, rate_limits=nim.RateLimits.default().scaled(10))
    codes = [(await raw.call(emulator, ACTION, VALID))["code"] for _ in range(101)]
    assert codes == [200] * 100 + [416]
