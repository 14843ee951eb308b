"""The emulator's HTTP surface: signing, content types, routing, records, the real port.

These tests speak raw HTTP with httpx and sign requests themselves (tests/_raw.py), so they
check the emulator against the facts file, not against the client.
"""

from __future__ import annotations

import email.utils
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import anyio
import httpx
import pytest

from nim_async.testing import NimEmulator
from nim_async.testing._checksum import auth_problem

from ._raw import BASE, KEY, SECRET, post, signed
from ._support import free_port

pytestmark = pytest.mark.anyio

TEXT = {"from": "alice", "ope": "0", "to": "bob", "type": "0", "body": '{"msg":"hi"}'}


@pytest.fixture
def emu() -> NimEmulator:
    return NimEmulator(KEY, SECRET)


async def test_a_signed_send_is_accepted_with_a_json_answer(emu: NimEmulator) -> None:
    """A correctly signed sendMsg answers HTTP 200, JSON in utf-8, code 200 and a msgid."""
    response = await post(emu, "msg/sendMsg", TEXT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    answer = response.json()
    assert answer["code"] == 200
    assert set(answer["data"]) == {"msgid", "timetag", "antispam"}
    assert answer["data"]["antispam"] is False


def test_the_facts_file_test_vector_is_accepted() -> None:
    """secret "appsecret", the seeds' Nonce and CurTime give the facts file's CheckSum."""
    headers = {
        "appkey": "appkey",
        "nonce": "4tgggergigwow323t23t",
        "curtime": "1443592222",
        "checksum": "22f6bb368aa719808ec13276e252e5b740271804",
    }
    assert auth_problem(headers, "appkey", "appsecret", now=1443592222) is None
    assert auth_problem(headers, "appkey", "appsecret", now=1443592222 + 301) is not None


def _without(name: str) -> Callable[[], dict[str, str]]:
    def headers() -> dict[str, str]:
        return {k: v for k, v in signed().items() if k != name}

    return headers


def _upper_checksum() -> dict[str, str]:
    headers = signed()
    return headers | {"CheckSum": headers["CheckSum"].upper()}


def _seconds(delta: int) -> Callable[[], dict[str, str]]:
    return lambda: signed(cur_time=str(int(time.time()) + delta))


# Factories, so that every header is made when its test runs, not at collection.
BAD_HEADERS: list[tuple[Callable[[], dict[str, str]], str]] = [
    (_without("AppKey"), "AppKey"),
    (_without("Nonce"), "Nonce"),
    (_without("CurTime"), "CurTime"),
    (_without("CheckSum"), "CheckSum"),
    (lambda: signed(key="other-key"), "AppKey"),
    (lambda: signed(nonce="n" * 129), "Nonce"),
    (lambda: signed(cur_time=str(int(time.time() * 1000))), "CurTime"),  # milliseconds
    (_seconds(-310), "CurTime"),
    (_seconds(310), "CurTime"),
    (lambda: signed(cur_time="12.5"), "CurTime"),
    (lambda: signed(secret="wrong-secret"), "CheckSum"),
    (_upper_checksum, "CheckSum"),
]


@pytest.mark.parametrize(("headers", "named"), BAD_HEADERS)
async def test_a_bad_signature_answers_414_naming_the_header(
    emu: NimEmulator, headers: Callable[[], dict[str, str]], named: str
) -> None:
    """Every signing failure is HTTP 200, code 414, and the desc names the header."""
    response = await post(emu, "msg/sendMsg", TEXT, headers=headers())
    assert response.status_code == 200
    answer = response.json()
    assert answer["code"] == 414
    assert named in answer["desc"]
    assert SECRET not in answer["desc"]
    assert emu.messages == []


async def test_curtime_within_five_minutes_is_accepted(emu: NimEmulator) -> None:
    """facts: CurTime is accepted within ±5 minutes of the server's clock."""
    for delta in (-290, 290):
        answer = (await post(emu, "msg/sendMsg", TEXT, headers=_seconds(delta)())).json()
        assert answer["code"] == 200


async def test_a_nonce_of_128_characters_is_accepted(emu: NimEmulator) -> None:
    """The facts file allows a Nonce of up to 128 characters."""
    response = await post(emu, "msg/sendMsg", TEXT, headers=signed(nonce="n" * 128))
    assert response.json()["code"] == 200


async def test_curtime_is_checked_against_the_real_clock(emu: NimEmulator) -> None:
    """A CurTime over 300 s off is refused; advance() ages messages, not signatures."""
    stale = signed(cur_time=str(int(time.time()) - 400))
    assert (await post(emu, "msg/sendMsg", TEXT, headers=stale)).json()["code"] == 414
    emu.advance(3600)
    assert (await post(emu, "msg/sendMsg", TEXT)).json()["code"] == 200


def _date(response: httpx.Response) -> float:
    """The answer's one Date header (RFC 7231) as Unix seconds."""
    (date,) = response.headers.get_list("date")
    return email.utils.parsedate_to_datetime(date).timestamp()


async def test_every_answer_carries_a_date_header(emu: NimEmulator) -> None:
    """A success, a 414, an unknown action and an upload download all carry Date."""
    sent = await post(emu, "msg/sendMsg", TEXT)
    refused = await post(emu, "msg/sendMsg", {})
    unknown = await post(emu, "msg/nothing", TEXT)
    uploaded = await post(emu, "msg/fileUpload", {}, files={"content": b"x"})
    async with httpx.AsyncClient(transport=emu.transport()) as client:
        downloaded = await client.get(uploaded.json()["url"])
        elsewhere = await client.get("https://api.netease.im/other")
    for response in (sent, refused, unknown, uploaded, downloaded, elsewhere):
        assert abs(_date(response) - time.time()) < 5


async def test_clock_skew_moves_the_curtime_check_and_the_date_header() -> None:
    """clock_skew=600: a CurTime from the real clock is 414, Date is 600 s ahead, real+600 is ok."""
    emu = NimEmulator(KEY, SECRET, clock_skew=600)
    stale = await post(emu, "msg/sendMsg", TEXT)
    assert stale.json()["code"] == 414
    assert "CurTime" in stale.json()["desc"]
    assert abs(_date(stale) - (time.time() + 600)) < 5
    ahead = signed(cur_time=str(int(time.time()) + 600))
    accepted = await post(emu, "msg/sendMsg", TEXT, headers=ahead)
    assert accepted.json()["code"] == 200
    assert abs(emu.messages[0].timetag / 1000 - (time.time() + 600)) < 5


async def test_a_negative_clock_skew_puts_the_service_behind() -> None:
    """clock_skew=-400: CurTime must be 400 s behind the real clock."""
    emu = NimEmulator(KEY, SECRET, clock_skew=-400)
    assert (await post(emu, "msg/sendMsg", TEXT)).json()["code"] == 414
    behind = signed(cur_time=str(int(time.time()) - 400))
    response = await post(emu, "msg/sendMsg", TEXT, headers=behind)
    assert response.json()["code"] == 200
    assert abs(_date(response) - (time.time() - 400)) < 5


async def test_advance_moves_neither_the_curtime_check_nor_the_date(emu: NimEmulator) -> None:
    """advance() ages messages; Date and the signature check keep the service's clock."""
    emu.advance(3600)
    response = await post(emu, "msg/sendMsg", TEXT)
    assert response.json()["code"] == 200
    assert abs(_date(response) - time.time()) < 5


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "multipart/form-data; boundary=x", "text/plain", None],
)
async def test_a_form_action_refuses_other_content_types(
    emu: NimEmulator, content_type: str | None
) -> None:
    """Every action but fileUpload takes application/x-www-form-urlencoded only."""
    headers = signed()
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = json.dumps(TEXT).encode()
    response = await post(emu, "msg/sendMsg", headers=headers, content=body)
    answer = response.json()
    assert answer["code"] == 414
    assert "Content-Type" in answer["desc"]


async def test_a_charset_parameter_is_allowed(emu: NimEmulator) -> None:
    """The seeds send "application/x-www-form-urlencoded;charset=utf-8"."""
    headers = signed() | {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
    body = httpx.QueryParams(TEXT | {"body": '{"msg":"你好"}'}).__str__().encode()
    response = await post(emu, "msg/sendMsg", headers=headers, content=body)
    assert response.json()["code"] == 200
    assert json.loads(emu.messages[0].body or "") == {"msg": "你好"}


async def test_an_unknown_charset_answers_414(emu: NimEmulator) -> None:
    """A body that cannot be decoded is a parameter error, not a crash."""
    headers = signed() | {"Content-Type": "application/x-www-form-urlencoded; charset=nope"}
    answer = (await post(emu, "msg/sendMsg", headers=headers, content=b"from=a")).json()
    assert answer["code"] == 414
    assert "nope" in answer["desc"]


async def test_a_content_part_without_filename_is_accepted(emu: NimEmulator) -> None:
    """A multipart "content" part sent as a plain field still uploads its text."""
    files = {"content": (None, b"plain text")}
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as client:
        response = await client.post("msg/fileUpload.action", files=files, headers=signed())
    assert response.json()["code"] == 200
    assert [upload.content for upload in emu.uploads.values()] == [b"plain text"]
    assert emu.calls[-1].form == {"content": "plain text"}


async def test_file_upload_refuses_a_urlencoded_body(emu: NimEmulator) -> None:
    """msg/fileUpload is multipart/form-data (facts: the only multipart action)."""
    answer = (await post(emu, "msg/fileUpload", {"content": "abc"})).json()
    assert answer["code"] == 414
    assert "multipart/form-data" in answer["desc"]


async def test_an_unknown_action_is_http_404(emu: NimEmulator) -> None:
    """A path that is no NIM action answers HTTP 404 with JSON code 404, and is recorded."""
    response = await post(emu, "msg/sendMessage", TEXT)
    assert response.status_code == 404
    assert response.json()["code"] == 404
    assert emu.calls[-1].action == "msg/sendMessage"
    assert emu.calls[-1].status == 404


async def test_an_action_without_the_suffix_is_unknown(emu: NimEmulator) -> None:
    """Actions are reached at <action>.action only."""
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as client:
        response = await client.post("msg/sendMsg", data=TEXT, headers=signed())
    assert response.status_code == 404


async def test_get_is_not_allowed(emu: NimEmulator) -> None:
    """NIM actions take POST; other methods answer HTTP 405."""
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as client:
        response = await client.get("msg/sendMsg.action", headers=signed())
    assert response.status_code == 405
    assert emu.calls[-1].status == 405


async def test_every_request_is_recorded_rejected_ones_too(emu: NimEmulator) -> None:
    """emu.calls keeps action, form, lower-case headers, status, code, answer and time."""
    before = emu.now()
    await post(emu, "msg/sendMsg", TEXT)
    await post(emu, "msg/sendMsg", TEXT, headers=signed(secret="nope"))
    await post(emu, "msg/sendMsg", {**TEXT, "ope": "5"})
    ok, unsigned, invalid = emu.calls
    assert [c.code for c in emu.calls] == [200, 414, 414]
    assert ok.action == "msg/sendMsg"
    assert ok.form == TEXT
    assert ok.files == {}
    assert ok.headers["appkey"] == KEY
    assert "content-type" in ok.headers
    assert ok.status == 200
    assert isinstance(ok.answer, dict)
    assert ok.answer["data"]["msgid"] == emu.messages[0].msgid
    assert "CheckSum" in str(unsigned.answer)
    assert "ope" in str(invalid.answer)
    assert before <= ok.at <= unsigned.at <= invalid.at <= emu.now()


async def test_non_ascii_values_arrive_intact(emu: NimEmulator) -> None:
    """Form values are UTF-8 (seeds: charset=utf-8); lengths count characters."""
    body = json.dumps({"msg": "撤回" * 10}, ensure_ascii=False)
    assert (await post(emu, "msg/sendMsg", {**TEXT, "body": body})).json()["code"] == 200
    assert emu.messages[0].body == body


async def test_the_emulator_serves_on_a_real_port() -> None:
    """serve() binds a free loopback port, serves the API and uploads, and stops on exit."""
    emu = NimEmulator(KEY, SECRET)
    with emu.serve() as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/nimserver/")
        async with httpx.AsyncClient(base_url=base_url) as client:
            sent = await client.post("msg/sendMsg.action", data=TEXT, headers=signed())
            uploaded = await client.post(
                "msg/fileUpload.action", files={"content": b"\x00\xff"}, headers=signed()
            )
            url = uploaded.json()["url"]
            assert url.startswith(base_url.removesuffix("nimserver/") + "nos/")
            downloaded = await client.get(url)
    assert sent.json()["code"] == 200
    assert downloaded.content == b"\x00\xff"
    assert [call.action for call in emu.calls] == ["msg/sendMsg", "msg/fileUpload"]
    async with httpx.AsyncClient(base_url=base_url) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("msg/sendMsg.action", data=TEXT, headers=signed())


async def test_serve_forever_serves_until_cancelled() -> None:
    """serve_forever (the CLI's server) answers on its port and releases it when cancelled."""
    port = free_port()
    emu = NimEmulator(KEY, SECRET)
    url = f"http://127.0.0.1:{port}/nimserver/msg/sendMsg.action"
    async with anyio.create_task_group() as tasks, httpx.AsyncClient() as client:
        tasks.start_soon(emu.serve_forever, "127.0.0.1", port)
        for _ in range(200):
            try:
                response = await client.post(url, data=TEXT, headers=signed())
                break
            except httpx.ConnectError:
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    assert response.json()["code"] == 200
    # uvicorn's own Date header is off: the one Date is the emulator's.
    assert len(response.headers.get_list("date")) == 1
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


async def test_the_pytest_fixture_gives_the_test_app(nim_emulator: NimEmulator) -> None:
    """The plugin's nim_emulator uses app key "test-app-key" and secret "test-app-secret"."""
    assert (nim_emulator.app_key, nim_emulator.app_secret) == (KEY, SECRET)
    assert (await post(nim_emulator, "msg/sendMsg", TEXT)).json()["code"] == 200


def test_the_plugin_imports_without_the_emulator_extra() -> None:
    """The plugin module must import where Starlette and uvicorn are missing."""
    code = (
        "import sys\n"
        "for name in ('starlette', 'uvicorn', 'multipart', 'python_multipart'):\n"
        "    sys.modules[name] = None\n"
        "import nim_async.testing.pytest_plugin\n"
        "from nim_async.testing import NimEmulator\n"
        "NimEmulator('k', 's')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_secret_is_not_in_the_repr() -> None:
    """repr(emulator) shows the app key, never the secret."""
    assert SECRET not in repr(NimEmulator(KEY, SECRET))
