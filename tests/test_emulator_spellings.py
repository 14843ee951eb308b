"""The official SDKs' camelCase spellings (pushContent, forcePushList, ...) of parameters
NetEase's doc pages spell in lower case: the emulator checks both alike.
"""

from __future__ import annotations

import pytest

from nim_async.testing import NimEmulator

from ._raw import KEY, SECRET, TEXT_BODY, call

pytestmark = pytest.mark.anyio

SEND = {"from": "alice", "ope": "1", "to": "team-1", "type": "0", "body": TEXT_BODY}
BATCH = {"fromAccid": "alice", "toAccids": '["bob"]', "type": "0", "body": TEXT_BODY}
VALID = {"msg/sendMsg": SEND, "msg/sendBatchMsg": BATCH}

# (action, the SDK's spelling, a value the documented spelling's rule refuses)
BROKEN = [
    ("msg/sendMsg", "pushContent", "p" * 600),
    ("msg/sendBatchMsg", "pushContent", "p" * 501),
    ("msg/sendMsg", "forcePushList", '["bob",1]'),
    ("msg/sendMsg", "forcePushAll", "1"),
]


@pytest.fixture
def emu() -> NimEmulator:
    return NimEmulator(KEY, SECRET)


@pytest.mark.parametrize(("action", "param", "value"), BROKEN)
async def test_the_sdk_spelling_is_refused_by_the_documented_rule(
    emu: NimEmulator, action: str, param: str, value: str
) -> None:
    """A camelCase parameter breaking its lower-case twin's rule answers 414 naming it."""
    answer = await call(emu, action, VALID[action] | {param: value})
    assert answer["code"] == 414
    assert param in str(answer["desc"])
    assert emu.messages == []


async def test_the_sdk_spellings_with_valid_values_are_accepted(emu: NimEmulator) -> None:
    """sendMsg as the Go and Java SDKs send it: pushContent and the forcePush* names."""
    sdk = {
        "pushContent": "p" * 500,
        "forcePushList": '["bob","carol"]',
        "forcePushAll": "false",
        "forcePushContent": "look",
    }
    assert (await call(emu, "msg/sendMsg", SEND | sdk))["code"] == 200
    assert emu.messages[0].form["pushContent"] == "p" * 500


@pytest.mark.parametrize(
    ("action", "doc", "sdk"),
    [
        ("msg/sendMsg", "pushcontent", "pushContent"),
        ("msg/sendMsg", "forcepushcontent", "forcePushContent"),
        ("msg/sendBatchMsg", "pushcontent", "pushContent"),
    ],
)
async def test_both_spellings_with_different_values_are_refused_naming_both(
    emu: NimEmulator, action: str, doc: str, sdk: str
) -> None:
    """Two values for one parameter answer 414 naming both spellings; nothing is sent."""
    answer = await call(emu, action, VALID[action] | {doc: "one", sdk: "two"})
    assert answer["code"] == 414
    assert doc in str(answer["desc"])
    assert sdk in str(answer["desc"])
    assert emu.messages == []


async def test_both_spellings_with_the_same_value_are_accepted(emu: NimEmulator) -> None:
    """The same value in both spellings means one thing, whichever the service reads."""
    same = {"forcepushall": "true", "forcePushAll": "true"}
    assert (await call(emu, "msg/sendMsg", SEND | same))["code"] == 200
    assert len(emu.messages) == 1


async def test_both_spellings_with_the_same_bad_value_are_refused(emu: NimEmulator) -> None:
    """Agreeing spellings are still checked: a 501-character push text answers 414."""
    same = {"pushcontent": "p" * 501, "pushContent": "p" * 501}
    answer = await call(emu, "msg/sendBatchMsg", BATCH | same)
    assert answer["code"] == 414
    assert "pushcontent" in str(answer["desc"]).lower()
