"""The emulator's message copies (抄送) as NetEase's message-copy page describes them:
messages with msgidClient and resendFlag, custom notifications as CUSTOM_PERSON /
CUSTOM_TEAM events, values as strings or (``callback_numbers=True``) as numbers, and
each form verified by nim_async's own verify_callback and callback_id.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import nim_async as nim
from nim_async.testing import NimEmulator
from nim_async.testing._server import serve_in_thread

from ._raw import KEY, SECRET, call, send

pytestmark = pytest.mark.anyio

COPY_URL = "http://app.test/nim/copy"
NOTICE = '{"kind":"friend-request"}'


class _Receiver:
    """An app server's copy route: keeps each raw body and the event verify_callback made of it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.events: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/nim/copy", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        self.bodies.append(body)
        self.events.append(nim.verify_callback(request.headers, body, SECRET, app_key=KEY))
        return JSONResponse({"code": 200})

    @property
    def raw(self) -> list[dict[str, Any]]:
        """Each body as JSON, exactly as it was sent."""
        return [json.loads(body) for body in self.bodies]


@pytest.fixture
def emu() -> NimEmulator:
    return NimEmulator(KEY, SECRET, accounts=["alice", "bob", "carol"])


async def _notify(emu: NimEmulator, to: str = "bob", **fields: str) -> None:
    notice = {"from": "alice", "msgtype": "0", "to": to, "attach": NOTICE}
    assert (await call(emu, "msg/sendAttachMsg", notice | fields))["code"] == 200


async def _copies(emu: NimEmulator, receiver: _Receiver | None = None) -> _Receiver:
    receiver = receiver or _Receiver()
    transport = httpx.ASGITransport(app=receiver.app)
    statuses = await emu.deliver_callbacks(COPY_URL, transport=transport)
    assert statuses == [200] * len(emu.messages)
    return receiver


async def test_a_message_copy_carries_msgid_client_and_resend_flag(emu: NimEmulator) -> None:
    """A sendMsg copy has the stored message's msgidClient, and resendFlag "0"."""
    assert (await send(emu))["code"] == 200
    (event,) = (await _copies(emu)).events
    assert (event["convType"], event["msgType"]) == ("PERSON", "TEXT")
    assert event["msgidClient"] == emu.messages[0].msgid_client
    assert event["resendFlag"] == "0"


async def test_a_message_copy_has_no_notification_fields(emu: NimEmulator) -> None:
    """customSafeFlag and customApnsText belong to custom notifications only."""
    await send(emu, pushcontent="hello")
    (event,) = (await _copies(emu)).events
    assert "customSafeFlag" not in event
    assert "customApnsText" not in event


async def test_a_notification_to_an_account_is_copied_as_custom_person(emu: NimEmulator) -> None:
    """sendAttachMsg with msgtype 0: convType CUSTOM_PERSON, msgType CUSTOM_P2P_MSG, the attach."""
    await _notify(emu)
    (event,) = (await _copies(emu)).events
    (stored,) = emu.messages
    assert stored.notification_id is not None
    assert event == {
        "eventType": "1",
        "convType": "CUSTOM_PERSON",
        "fromAccount": "alice",
        "to": "bob",
        "msgType": "CUSTOM_P2P_MSG",
        "attach": NOTICE,
        "msgidServer": str(stored.notification_id),
        "msgTimestamp": str(stored.timetag),
        "fromClientType": "REST",
        "customSafeFlag": "1",
    }


async def test_a_notification_to_a_team_is_copied_as_custom_team(emu: NimEmulator) -> None:
    """sendAttachMsg with msgtype 1: convType CUSTOM_TEAM, msgType CUSTOM_TEAM_MSG, to the tid."""
    await _notify(emu, to="team-1", msgtype="1")
    (event,) = (await _copies(emu)).events
    assert (event["convType"], event["msgType"]) == ("CUSTOM_TEAM", "CUSTOM_TEAM_MSG")
    assert (event["to"], event["attach"]) == ("team-1", NOTICE)


@pytest.mark.parametrize(("save", "flag"), [(None, "1"), ("2", "1"), ("1", "0")])
async def test_custom_safe_flag_says_whether_the_notification_is_kept_for_offline_users(
    emu: NimEmulator, save: str | None, flag: str
) -> None:
    """save=1 (online only) copies as customSafeFlag "0"; save=2 and the default as "1"."""
    await _notify(emu, **({} if save is None else {"save": save}))
    (event,) = (await _copies(emu)).events
    assert event["customSafeFlag"] == flag


async def test_custom_apns_text_is_the_notifications_push_text(emu: NimEmulator) -> None:
    """A notification's pushcontent is its copy's customApnsText."""
    await _notify(emu, pushcontent="新的好友请求")
    (event,) = (await _copies(emu)).events
    assert event["customApnsText"] == "新的好友请求"


async def test_a_notification_without_push_text_has_no_custom_apns_text(emu: NimEmulator) -> None:
    """Without pushcontent the copy leaves customApnsText out rather than sending it empty."""
    await _notify(emu)
    (event,) = (await _copies(emu)).events
    assert "customApnsText" not in event


async def test_a_notification_copy_has_no_message_fields(emu: NimEmulator) -> None:
    """msgidClient, resendFlag and body belong to messages only."""
    await _notify(emu)
    (event,) = (await _copies(emu)).events
    assert not {"msgidClient", "resendFlag", "body"} & set(event)


async def test_a_batch_notification_is_copied_once_per_registered_recipient(
    emu: NimEmulator,
) -> None:
    """sendBatchAttachMsg: one CUSTOM_PERSON copy per delivery, each with its own msgidServer."""
    batch = {"fromAccid": "alice", "toAccids": '["bob","carol","zed"]', "attach": NOTICE}
    assert (await call(emu, "msg/sendBatchAttachMsg", batch))["code"] == 200
    events = (await _copies(emu)).events
    assert [(e["convType"], e["to"]) for e in events] == [
        ("CUSTOM_PERSON", "bob"),
        ("CUSTOM_PERSON", "carol"),
    ]
    assert len({e["msgidServer"] for e in events}) == 2


async def test_a_repeated_delivery_carries_the_same_ids(emu: NimEmulator) -> None:
    """Delivered twice, a message and a notification dedupe by the same callback_id."""
    await send(emu)
    await _notify(emu)
    receiver = await _copies(emu, await _copies(emu))
    ids = [nim.callback_id(event) for event in receiver.events]
    assert ids[:2] == ids[2:]
    assert len(set(ids)) == 2


async def test_by_default_every_copy_value_is_a_string(emu: NimEmulator) -> None:
    """The documented form: every field of message and notification copies is a JSON string."""
    await send(emu)
    await _notify(emu, save="1")
    for event in (await _copies(emu)).raw:
        assert all(isinstance(value, str) for value in event.values()), event


async def test_callback_numbers_sends_the_numeric_fields_as_json_numbers() -> None:
    """callback_numbers=True: eventType, msgidServer, msgTimestamp, resendFlag and
    customSafeFlag are JSON numbers; the other fields stay strings."""
    emu = NimEmulator(KEY, SECRET, callback_numbers=True)
    await send(emu)
    await _notify(emu, save="1")
    message, notice = (await _copies(emu)).raw
    message_id, notification_id = emu.messages[0].msgid, emu.messages[1].notification_id
    assert (message["eventType"], message["resendFlag"]) == (1, 0)
    assert message["msgidServer"] == message_id
    assert message["msgTimestamp"] == emu.messages[0].timetag
    assert (notice["msgidServer"], notice["customSafeFlag"]) == (notification_id, 0)
    assert isinstance(message["msgidClient"], str)
    assert isinstance(notice["to"], str)


@pytest.mark.parametrize("numbers", [False, True], ids=["strings", "numbers"])
async def test_verify_callback_and_callback_id_accept_either_form(numbers: bool) -> None:
    """Over a real socket, nim_async's verify_callback accepts both forms of each copy, and
    callback_id gives the same string id from either."""
    emu = NimEmulator(KEY, SECRET, callback_numbers=numbers)
    await send(emu, to="carol")
    await _notify(emu, to="team-1", msgtype="1")
    receiver = _Receiver()
    with serve_in_thread(receiver.app) as base:
        url = base.replace("/nimserver/", "/nim/copy")
        assert await emu.deliver_callbacks(url) == [200, 200]
    message_id, notification_id = emu.messages[0].msgid, emu.messages[1].notification_id
    assert [nim.callback_id(event) for event in receiver.events] == [
        str(message_id),
        str(notification_id),
    ]
    assert [event["convType"] for event in receiver.events] == ["PERSON", "CUSTOM_TEAM"]
