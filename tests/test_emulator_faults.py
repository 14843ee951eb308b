"""Failing on demand, latency, the clock, and frequency control (416 and blocks)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
import httpx
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator
from nim_async.testing._limiter import FrequencyControl

from . import _raw as raw
from ._raw import KEY, SECRET
from ._support import make_client

pytestmark = pytest.mark.anyio

TEXT = {"from": "alice", "ope": "0", "to": "bob", "type": "0", "body": '{"msg":"hi"}'}
ATTACH = {"from": "alice", "msgtype": "0", "to": "bob", "attach": "{}"}


async def post(
    emu: NimEmulator, action: str = "msg/sendMsg", form: dict[str, str] = TEXT, secret: str = SECRET
) -> httpx.Response:
    """A sendMsg of TEXT (or ``action`` with ``form``) signed with ``secret``."""
    return await raw.post(emu, action, form, headers=raw.signed(secret=secret))


async def code(emu: NimEmulator, action: str = "msg/sendMsg", form: dict[str, str] = TEXT) -> int:
    answer = (await post(emu, action, form)).json()
    assert isinstance(answer["code"], int)
    return answer["code"]


@pytest.fixture
def emu() -> NimEmulator:
    return NimEmulator(KEY, SECRET)


async def test_fail_next_answers_the_code_count_times(emu: NimEmulator) -> None:
    """The next `count` calls answer the code with a desc; nothing is stored; then all is well."""
    emu.fail_next("msg/sendMsg", 503, count=2)
    first = (await post(emu)).json()
    assert first["code"] == 503
    assert first["desc"]
    assert await code(emu) == 503
    assert emu.messages == []
    assert await code(emu) == 200
    assert [call.code for call in emu.calls] == [503, 503, 200]


async def test_fail_next_is_per_action_and_queues_in_order(emu: NimEmulator) -> None:
    """Faults of one action leave the others alone, and queued faults come in order."""
    emu.fail_next("msg/sendMsg", 500, desc="boom")
    emu.fail_next("msg/sendMsg", 431)
    assert await code(emu, "msg/sendAttachMsg", ATTACH) == 200
    assert (await post(emu)).json() == {"code": 500, "desc": "boom"}
    assert await code(emu) == 431


async def test_an_after_fault_carries_the_call_out_first(emu: NimEmulator) -> None:
    """after=True stores the message and still answers the error: an ambiguous failure."""
    emu.fail_next("msg/sendMsg", 500, after=True)
    assert await code(emu) == 500
    assert len(emu.messages) == 1


async def test_an_after_fault_leaves_a_failing_call_its_own_answer(emu: NimEmulator) -> None:
    """A call that fails on its own (414) answers that and spends the after-fault."""
    emu.fail_next("msg/sendMsg", 500, after=True)
    assert await code(emu, form={**TEXT, "ope": "7"}) == 414
    assert await code(emu) == 200


async def test_unsigned_calls_do_not_spend_faults(emu: NimEmulator) -> None:
    """The signature is checked before injected faults."""
    emu.fail_next("msg/sendMsg", 503)
    assert (await post(emu, secret="wrong")).json()["code"] == 414
    assert await code(emu) == 503


async def test_fail_next_http_answers_an_html_gateway_page(emu: NimEmulator) -> None:
    """An HTTP fault answers the status with an HTML body, recorded with code None."""
    emu.fail_next_http("msg/sendMsg")
    response = await post(emu)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text
    assert (emu.calls[-1].status, emu.calls[-1].code) == (502, None)
    assert emu.calls[-1].answer == response.text
    assert emu.messages == []


async def test_fail_next_http_after_stores_the_message(emu: NimEmulator) -> None:
    """after=True with an HTTP fault: stored, then a 504 page."""
    emu.fail_next_http("msg/sendMsg", 504, after=True)
    assert (await post(emu)).status_code == 504
    assert len(emu.messages) == 1


def test_faults_need_a_known_action_and_a_positive_count(emu: NimEmulator) -> None:
    """A typo in the action name or count=0 is refused at once."""
    with pytest.raises(ValueError, match="unknown action"):
        emu.fail_next("msg/sendMessage", 500)
    with pytest.raises(ValueError, match="count"):
        emu.fail_next_http("msg/sendMsg", count=0)


async def test_latency_delays_the_answer_not_the_work(emu: NimEmulator) -> None:
    """The call is carried out, then the answer waits: a timeout leaves the message stored."""
    emu.set_latency(0.3, "msg/sendMsg")
    with anyio.move_on_after(0.1) as scope:
        await post(emu)
    assert scope.cancelled_caught
    assert len(emu.messages) == 1
    start = time.monotonic()
    assert await code(emu, "msg/sendAttachMsg", ATTACH) == 200
    assert time.monotonic() - start < 0.2


async def test_latency_for_all_actions_yields_to_one_action(emu: NimEmulator) -> None:
    """set_latency(s) applies to every action without its own setting."""
    emu.set_latency(0.2)
    emu.set_latency(0, "msg/sendMsg")
    start = time.monotonic()
    await post(emu)
    assert time.monotonic() - start < 0.15
    start = time.monotonic()
    await post(emu, "msg/sendAttachMsg", ATTACH)
    assert time.monotonic() - start >= 0.2


async def test_advance_moves_timetags(emu: NimEmulator) -> None:
    """advance() shifts the wall clock the emulator stamps messages with."""
    before = emu.now()
    emu.advance(3600)
    assert emu.now() - before > 3599.99
    await post(emu)
    assert emu.messages[0].timetag >= int((before + 3600) * 1000) - 1


@dataclass(frozen=True)
class Rate:
    calls: int
    per: float


@dataclass(frozen=True)
class ActionLimits:
    rates: tuple[Rate, ...]
    block: float | None


@dataclass(frozen=True)
class Limits:
    """The duck type the emulator expects: for_action(action) → rates and block, or None."""

    table: dict[str, ActionLimits]

    def for_action(self, action: str) -> ActionLimits | None:
        return self.table.get(action)


async def test_a_breach_answers_416_and_blocks_the_action() -> None:
    """The call that finds the window full is 416, and so is every call during the block."""
    limits = Limits({"msg/sendMsg": ActionLimits((Rate(3, 0.3),), block=0.5)})
    emu = NimEmulator(KEY, SECRET, rate_limits=limits)
    assert [await code(emu) for _ in range(3)] == [200, 200, 200]
    assert await code(emu) == 416
    assert await code(emu, "msg/sendAttachMsg", ATTACH) == 200  # other actions are not limited
    await anyio.sleep(0.35)  # the window has passed, the block has not
    assert await code(emu) == 416
    assert emu.rate_limited == 2
    await anyio.sleep(0.2)
    assert await code(emu) == 200
    assert len(emu.messages) == 5


async def test_auth_is_checked_before_frequency_control() -> None:
    """An unsigned call answers 414, even during a block, and is not counted."""
    limits = Limits({"msg/sendMsg": ActionLimits((Rate(1, 0.5),), block=0.5)})
    emu = NimEmulator(KEY, SECRET, rate_limits=limits)
    assert (await post(emu, secret="wrong")).json()["code"] == 414
    assert await code(emu) == 200
    assert await code(emu) == 416
    assert (await post(emu, secret="wrong")).json()["code"] == 414
    assert emu.rate_limited == 1


async def test_calls_spaced_by_the_period_are_never_refused() -> None:
    """A client that starts a call only `per` after the answer of the call `calls` back is safe."""
    limits = Limits({"msg/sendMsg": ActionLimits((Rate(2, 0.2),), block=1.0)})
    emu = NimEmulator(KEY, SECRET, rate_limits=limits)
    answered: list[float] = []
    for i in range(6):
        if i >= 2:
            await anyio.sleep(max(0.0, answered[i - 2] + 0.2 - time.monotonic()) + 0.01)
        assert await code(emu) == 200
        answered.append(time.monotonic())
    assert emu.rate_limited == 0


async def test_job_nos_del_allows_five_calls_a_day() -> None:
    """Given 5 calls/day with a day's block, the emulator answers the sixth job/nos/del 416."""
    day = 86_400.0
    emu = NimEmulator(
        KEY, SECRET, rate_limits=Limits({"job/nos/del": ActionLimits((Rate(5, day),), day)})
    )
    start, end = _yesterday()
    nos = {"startTime": str(start), "endTime": str(end)}
    assert [await code(emu, "job/nos/del", nos) for _ in range(7)] == [200] * 5 + [416] * 2
    assert len(emu.nos_tasks) == 5
    assert await code(emu) == 200  # other actions are not limited


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("msg/markReadMsg", {"from": "bob", "to": "alice", "msgidClient": "c1"}),
        ("msg/markReadTeamMsg", {"accid": "bob", "tid": "1", "msgids": "[1]"}),
        ("msg/delMsg", {"deleteMsgid": "1", "timetag": "1", "type": "7", "from": "a", "to": "b"}),
        ("history/delBroadcastMsgById", {"broadcastId": "1"}),
    ],
)
async def test_the_new_actions_are_frequency_controlled(
    action: str, fields: dict[str, str]
) -> None:
    """The four SDK-only actions take limits like the others: the breach is 416."""
    emu = NimEmulator(
        KEY, SECRET, rate_limits=Limits({action: ActionLimits((Rate(2, 60.0),), 60.0)})
    )
    assert [await code(emu, action, fields) for _ in range(3)] == [200, 200, 416]
    assert emu.rate_limited == 1


def _yesterday() -> tuple[int, int]:
    # seeds/003 job/nos/del: a span of one day ending before today (UTC+8).
    day_ms, offset = 86_400_000, 8 * 3_600_000
    today = (int(time.time() * 1000) + offset) // day_ms * day_ms - offset
    return today - 1 - day_ms, today - 1


def test_rate_limits_need_for_action() -> None:
    """An object without for_action is refused at once."""
    with pytest.raises(TypeError, match="for_action"):
        NimEmulator(KEY, SECRET, rate_limits=object())


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_any_window_of_per_seconds_holds_at_most_calls(clock: FakeClock) -> None:
    """Sliding, not fixed: with 2 per 10 s, a call is refused while (t - 10, t] holds two."""
    control = FrequencyControl(Limits({"a": ActionLimits((Rate(2, 10.0),), None)}), clock)
    admitted = []
    for at in (0, 9, 10, 15, 19, 20):
        clock.now = 100.0 + at
        admitted.append(control.admit("a"))
    # 10: the call at 0 has left the window; 15: (5, 15] holds 9 and 10;
    # 19: (9, 19] holds only 10; 20: (10, 20] holds only 19.
    assert admitted == [True, True, True, False, True, True]


def test_several_rates_all_hold_and_refused_calls_count_nowhere(clock: FakeClock) -> None:
    """With 2/1 s and 3/10 s, the longer window refuses the fourth call; blocks are not counted."""
    rates = (Rate(2, 1.0), Rate(3, 10.0))
    control = FrequencyControl(Limits({"a": ActionLimits(rates, block=2.0)}), clock)
    results = []
    for at in (0.0, 1.5, 3.0, 4.5, 5.0, 7.0, 11.0):
        clock.now = 100 + at
        results.append(control.admit("a"))
    # 4.5: the 10 s window holds 0, 1.5, 3 → breach, blocked until 6.5; 5.0 in the block;
    # 7.0: the 10 s window still holds three → breach again; 11.0: (1, 11] holds 1.5, 3 → ok.
    assert results == [True, True, True, False, False, False, True]


def test_a_day_window_with_a_day_block(clock: FakeClock) -> None:
    """job/nos/del's 5 calls/day, blocked a day: the sixth call starts a day of refusals.

    The block starts at the refused call, so the action admits again a day after
    it, and the window then holds none of the first five.
    """
    day = 86_400.0
    limits = Limits({"job/nos/del": ActionLimits((Rate(5, day),), block=day)})
    control = FrequencyControl(limits, clock)
    admitted = []
    for at in (0, 1000, 2000, 3000, 4000, 5000, day - 1, 5000 + day - 1, 5000 + day):
        clock.now = 100.0 + at
        admitted.append(control.admit("job/nos/del"))
    assert admitted == [True] * 5 + [False, False, False, True]


def test_an_action_without_limits_is_never_refused(clock: FakeClock) -> None:
    """for_action returning None means no limit for that action."""
    control = FrequencyControl(Limits({}), clock)
    assert all(control.admit("msg/sendMsg") for _ in range(1000))


async def test_the_in_process_transport_honours_the_read_timeout(emu: NimEmulator) -> None:
    """A read timeout shorter than the latency raises ReadTimeout; the call was carried out."""
    emu.set_latency(5.0)
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=raw.BASE, timeout=httpx.Timeout(None, read=0.05)
    ) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("msg/sendMsg.action", data=TEXT, headers=raw.signed())
    assert [call.code for call in emu.calls] == [200]
    assert len(emu.messages) == 1


async def test_the_in_process_transport_without_a_read_timeout_waits(emu: NimEmulator) -> None:
    """timeout=None waits out the latency and gets the answer."""
    emu.set_latency(0.05)
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=raw.BASE, timeout=None
    ) as client:
        response = await client.post("msg/sendMsg.action", data=TEXT, headers=raw.signed())
    assert response.json()["code"] == 200


async def test_a_client_timeout_in_process_is_an_ambiguous_nim_timeout(emu: NimEmulator) -> None:
    """NimClient over the in-process transport: NimTimeout, may_have_reached_server=True."""
    emu.set_latency(5.0)
    async with make_client(emu, app_key=KEY, app_secret=SECRET, timeout=0.05) as client:
        with pytest.raises(nim.NimTimeout) as raised:
            await client.send_msg("alice", "bob", nim.Text("hi"))
    assert raised.value.may_have_reached_server
    assert len(emu.messages) == 1


async def test_summary_counts_the_answers_by_code_and_the_416s() -> None:
    """summary(): one line with the total, each code (HTML answers by HTTP status), and 416s."""
    limits = Limits({"msg/sendMsg": ActionLimits((Rate(2, 60.0),), block=None)})
    emu = NimEmulator(KEY, SECRET, rate_limits=limits)
    assert emu.summary() == "NIM emulator answered 0 calls; 0 blocked (416)"
    emu.fail_next_http("msg/sendAttachMsg", 502)
    assert (await post(emu, "msg/sendAttachMsg", ATTACH)).status_code == 502
    assert [await code(emu) for _ in range(3)] == [200, 200, 416]
    assert (await post(emu, secret="wrong")).json()["code"] == 414
    assert await code(emu, "msg/sendAttachMsg", ATTACH) == 200
    assert emu.summary() == (
        "NIM emulator answered 6 calls: code 200 ×3, code 414 ×1, code 416 ×1, HTTP 502 ×1;"
        " 1 blocked (416)"
    )
