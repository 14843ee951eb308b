"""examples/fastapi_app.py over real sockets: uvicorn on one loopback port, the emulator on
another, and HTTP requests from outside, as a deployment and its callers would see them."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"
ACCOUNTS = ("alice", "bob", "carol")
# Longer than any answer here takes, even on a busy machine: a 429 that came
# sooner did not wait out max_wait first.
MAX_WAIT = 5.0
# Two calls a minute for each send: the third meets a spent budget.
LIMITS = (
    nim.RateLimits()
    .with_action("sendMsg", nim.Rate(2, 60))
    .with_action("sendBatchMsg", nim.Rate(2, 60))
)
SEND_BLOCK = LIMITS.for_action("msg/sendMsg").block  # the server's block after a 416
# NIM's parameter names: a caller of this service knows its fields, not these.
NIM_NAMES = re.compile(r"\b(from|fromAccid|toAccids|body|deleteMsgid)\b")


def _load_example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The example module, imported as uvicorn would (its module-level app needs credentials)."""
    monkeypatch.setenv("NIM_APP_KEY", APP_KEY)
    monkeypatch.setenv("NIM_APP_SECRET", APP_SECRET)
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # as an import would (dataclasses)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _load_example(monkeypatch)


@pytest.fixture
def emulator() -> NimEmulator:
    return NimEmulator(APP_KEY, APP_SECRET, accounts=ACCOUNTS)


def _serve(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="warning")
    )
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the service stopped while starting"
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture
def service(example: ModuleType, emulator: NimEmulator) -> Iterator[str]:
    """The example app against the served emulator, with LIMITS and MAX_WAIT."""
    with emulator.serve() as nim_url:
        app = example.create_app(
            example.Settings(APP_KEY, APP_SECRET, nim_url),
            rate_limits=LIMITS,
            limiter=nim.LocalLimiter(),
            max_wait=MAX_WAIT,
        )
        yield from _serve(app)


@pytest.fixture
def http(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def refusing() -> Iterator[tuple[httpx.Client, NimEmulator]]:
    """One service for the tests whose requests must never reach NIM, and its emulator."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        example = _load_example(monkeypatch)
    emulator = NimEmulator(APP_KEY, APP_SECRET, accounts=ACCOUNTS)
    with emulator.serve() as nim_url:
        settings = example.Settings(APP_KEY, APP_SECRET, nim_url)
        app = example.create_app(settings, rate_limits=LIMITS, limiter=nim.LocalLimiter())
        for url in _serve(app):
            with httpx.Client(base_url=url, timeout=30) as client:
                yield client, emulator


def _error(answer: httpx.Response) -> dict[str, Any]:
    """The error object, after checking the one shape every error answer has."""
    body = answer.json()
    assert list(body) == ["error"], body
    error: dict[str, Any] = body["error"]
    assert {"code", "message", "field"} <= error.keys(), error
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", error["code"]), error
    assert "Error(" not in answer.text
    return error


def _notify(to: str = "bob", *, sender: str = "alice", text: str = "hi") -> dict[str, Any]:
    return {"sender": sender, "to": to, "text": text}


def test_notify_batch_and_recall_go_through_the_service(
    http: httpx.Client, emulator: NimEmulator
) -> None:
    """Each route answers what the NIM server answered it; unknown recipients of a batch
    are listed, not an error."""
    sent = http.post("/notify", json=_notify())
    assert sent.status_code == 200
    batch = http.post("/batch", json={"sender": "alice", "to": ["bob", "zed"], "text": "all"})
    assert batch.status_code == 200
    assert batch.json() == {
        "accepted": 1,
        "unregister": ["zed"],
        "resendable": [],
        "maybe_sent": [],
    }
    recalled = http.post("/recall", json={"sender": "alice", "to": "bob", **sent.json()})
    assert recalled.json() == {"recalled": True}
    assert [call.action for call in emulator.calls] == [
        "msg/sendMsg",
        "msg/sendBatchMsg",
        "msg/recall",
    ]
    assert emulator.messages[0].recalled


def test_message_copies_are_received_once_each(
    service: str,
    http: httpx.Client,
    emulator: NimEmulator,
    example: ModuleType,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """NIM's signed copies are answered 200 and handled once, however often NIM delivers them."""
    caplog.set_level(logging.INFO, logger=example.logger.name)
    http.post("/notify", json=_notify())
    http.post("/batch", json={"sender": "alice", "to": ["bob", "carol"], "text": "all"})
    url = f"{service}/nim/callback"
    assert asyncio.run(emulator.deliver_callbacks(url)) == [200, 200, 200]
    assert asyncio.run(emulator.deliver_callbacks(url)) == [200, 200, 200]
    handled = [r for r in caplog.records if r.getMessage().startswith("message copy")]
    assert len(handled) == 3


@pytest.mark.parametrize(
    ("route", "request_body", "field"),
    [
        # Refused by the request model (pydantic).
        ("/notify", {"sender": "alice", "to": "bob"}, "text"),
        ("/notify", {"sender": "alice", "to": 7, "text": "hi"}, "to"),
        ("/notify", {**_notify(), "subject": "typo"}, "subject"),
        ("/recall", {"sender": "alice", "to": "bob", "msgid": "x", "timetag": 1}, "msgid"),
        ("/batch", {"sender": "alice", "to": [], "text": "hi"}, "to"),
        ("/batch", {"sender": "alice", "to": ["u"] * 10_001, "text": "hi"}, "to"),
        # Refused by nim_async before sending (InvalidRequest names NIM's parameter).
        ("/notify", _notify(sender=""), "sender"),
        ("/notify", _notify(to="b" * 33), "to"),
        ("/notify", _notify(text="x" * 6000), "text"),
        ("/batch", {"sender": "alice", "to": ["bob", "c" * 33], "text": "hi"}, "to"),
        ("/batch", {"sender": "alice", "to": ["bob"], "text": "x" * 6000}, "text"),
        ("/recall", {"sender": "", "to": "bob", "msgid": 1, "timetag": 1}, "sender"),
    ],
)
def test_bad_input_is_one_422_naming_the_request_field(
    refusing: tuple[httpx.Client, NimEmulator], route: str, request_body: Any, field: str
) -> None:
    """The request model's refusals and NIM's limits answer alike, naming this service's
    field, never NIM's parameter; nothing reaches NIM."""
    http, emulator = refusing
    answer = http.post(route, json=request_body)
    assert answer.status_code == 422
    error = _error(answer)
    assert error.keys() == {"code", "message", "field"}
    assert error["code"] == "invalid_request"
    assert error["field"] == field
    assert NIM_NAMES.search(error["message"]) is None, error
    assert emulator.calls == []


def test_unrouted_requests_share_the_error_shape(
    refusing: tuple[httpx.Client, NimEmulator],
) -> None:
    """FastAPI's own 404 and 405 come in the same shape as every other error."""
    http, _ = refusing
    missing = http.post("/nowhere", json={})
    assert missing.status_code == 404
    assert _error(missing)["code"] == "not_found"
    wrong = http.get("/notify")
    assert wrong.status_code == 405
    assert _error(wrong)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("request_body", "field"),
    [(_notify(to="zed"), "to"), (_notify(sender="mallory"), "sender")],
)
def test_an_unknown_account_is_422_naming_its_field(
    http: httpx.Client, request_body: dict[str, Any], field: str
) -> None:
    """An account NIM does not know is the caller's input, not an upstream failure."""
    answer = http.post("/notify", json=request_body)
    assert answer.status_code == 422
    error = _error(answer)
    assert (error["code"], error["field"]) == ("unknown_account", field)
    assert "404" not in answer.text


def test_a_batch_stopped_by_an_unknown_sender_says_why_and_what_to_resend(
    http: httpx.Client, emulator: NimEmulator
) -> None:
    """A stopped job is never 200: its cause, and the recipients that are surely unsent."""
    recipients = [f"user{n}" for n in range(1000)]  # two batch calls: the minute's budget
    answer = http.post("/batch", json={"sender": "mallory", "to": recipients, "text": "hi"})
    assert answer.status_code == 422
    error = _error(answer)
    assert (error["code"], error["field"]) == ("unknown_account", "sender")
    outcome = error["outcome"]
    assert outcome["accepted"] == 0
    assert sorted(outcome["resendable"]) == sorted(recipients)
    assert outcome["maybe_sent"] == []
    assert emulator.messages == []


def test_a_spent_budget_is_429_at_once_with_the_real_wait(
    http: httpx.Client, emulator: NimEmulator
) -> None:
    """The third send in a minute is refused without waiting out max_wait, and Retry-After
    is when its slot frees (a minute after the first answers), rounded up."""
    first = time.monotonic()
    for text in ("1", "2"):
        assert http.post("/notify", json=_notify(text=text)).status_code == 200
    started = time.monotonic()
    busy = http.post("/notify", json=_notify(text="3"))
    answered = time.monotonic()
    assert busy.status_code == 429
    assert _error(busy)["code"] == "rate_limited"
    assert answered - started < MAX_WAIT  # refused at once: the slot is known to be further
    assert math.ceil(60 - (answered - first)) <= int(busy.headers["Retry-After"]) <= 60
    assert len(emulator.calls) == 2


def test_a_server_block_is_429_with_the_block_time(
    http: httpx.Client, emulator: NimEmulator
) -> None:
    """After a 416 the caller is told the server's block, not a guess, and further sends
    are refused for the rest of it without reaching NIM."""
    emulator.fail_next("msg/sendMsg", 416)
    started = time.monotonic()
    blocked = http.post("/notify", json=_notify(text="1"))
    assert blocked.status_code == 429
    assert blocked.headers["Retry-After"] == str(math.ceil(SEND_BLOCK))
    held = http.post("/notify", json=_notify(text="2"))
    elapsed = time.monotonic() - started
    assert held.status_code == 429
    assert _error(held)["code"] == "rate_limited"
    assert math.ceil(SEND_BLOCK - elapsed) <= int(held.headers["Retry-After"]) <= SEND_BLOCK
    assert [call.code for call in emulator.calls] == [416]


def test_a_batch_over_budget_is_429_after_the_calls_the_budget_allows(
    http: httpx.Client, emulator: NimEmulator
) -> None:
    """Two batch calls a minute: the job stops at the third chunk instead of failing
    each of the others after a wait, and says who got it and who did not."""
    recipients = [f"user{n}" for n in range(10_000)]  # twenty batch calls' worth
    emulator.register(*recipients)
    answer = http.post("/batch", json={"sender": "alice", "to": recipients, "text": "sale"})
    assert answer.status_code == 429
    assert MAX_WAIT < int(answer.headers["Retry-After"]) <= 60
    error = _error(answer)
    assert error["code"] == "rate_limited"
    assert [call.action for call in emulator.calls] == ["msg/sendBatchMsg"] * 2
    outcome = error["outcome"]
    delivered = [message.to for message in emulator.messages]
    assert outcome["accepted"] == len(delivered) == 1000
    assert sorted(outcome["resendable"] + delivered) == sorted(recipients)
    assert outcome["maybe_sent"] == []


def test_an_unreachable_nim_is_503_without_exception_text(example: ModuleType) -> None:
    """Nothing listens where NIM should be: 503, saying the request never reached it."""
    dead = f"http://127.0.0.1:{free_port()}/nimserver/"
    app = example.create_app(
        example.Settings(APP_KEY, APP_SECRET, dead), rate_limits=None, limiter=nim.LocalLimiter()
    )
    for url in _serve(app):
        with httpx.Client(base_url=url, timeout=30) as http:
            answer = http.post("/notify", json=_notify())
        assert answer.status_code == 503
        error = _error(answer)
        assert error["code"] == "upstream_unavailable"
        assert error["may_have_reached_server"] is False
        assert "ConnectError" not in answer.text
        assert "127.0.0.1" not in answer.text


@pytest.mark.parametrize("fail", ["code 500", "HTTP 503 page"])
def test_a_server_error_is_502_saying_the_send_may_have_gone_out(
    http: httpx.Client, emulator: NimEmulator, fail: str
) -> None:
    """NIM failing is the upstream's error, and a send it may have carried out must not
    invite a blind retry."""
    if fail == "code 500":
        emulator.fail_next("msg/sendMsg", 500)
    else:
        emulator.fail_next_http("msg/sendMsg", 503)
    answer = http.post("/notify", json=_notify())
    assert answer.status_code == 502
    error = _error(answer)
    assert error["code"] == "upstream_error"
    assert error["may_have_been_carried_out"] is True
    assert "msg/sendMsg" not in answer.text


def test_a_lost_answer_is_504_saying_the_send_may_have_gone_out(example: ModuleType) -> None:
    """No answer to a request that went out: 504, not a retry invitation."""
    lost = nim.NimTimeout("read timeout", action="msg/sendMsg", may_have_reached_server=True)
    answer = example.nim_error_response(lost)
    assert answer.status_code == 504
    error = json.loads(answer.body)["error"]
    assert (error["code"], error["may_have_reached_server"]) == ("upstream_timeout", True)
    assert "read timeout" not in error["message"]


def _signed(body: bytes, cur_time_ms: int, secret: str = APP_SECRET) -> dict[str, str]:
    md5 = hashlib.md5(body).hexdigest()
    checksum = hashlib.sha1(f"{secret}{md5}{cur_time_ms}".encode()).hexdigest()
    return {"AppKey": APP_KEY, "CurTime": str(cur_time_ms), "MD5": md5, "CheckSum": checksum}


def test_rejected_callbacks_get_one_bare_401_and_the_reason_is_logged(
    refusing: tuple[httpx.Client, NimEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong CheckSum and a stale CurTime answer the same bytes; only the log says which."""
    http, _ = refusing
    caplog.set_level(logging.WARNING, logger="nim_async")
    body = b'{"eventType":"1","msgidServer":"1"}'
    now_ms = int(time.time() * 1000)
    forged = http.post("/nim/callback", content=body, headers=_signed(body, now_ms, "wrong"))
    stale = http.post("/nim/callback", content=body, headers=_signed(body, now_ms - 3_600_000))
    assert forged.status_code == stale.status_code == 401
    assert forged.content == stale.content
    assert _error(forged) == {"code": "unauthorized", "message": "unauthorized", "field": None}
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "nim_async")
    assert "checksum" in logged
    assert "stale" in logged


@pytest.mark.parametrize("missing", ["NIM_APP_KEY", "NIM_APP_SECRET"])
def test_the_service_refuses_to_start_without_a_credential(missing: str, tmp_path: Path) -> None:
    """uvicorn exits at startup with a message naming the variable, instead of serving 500s."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("NIM_")}
    env |= {"NIM_APP_KEY": APP_KEY, "NIM_APP_SECRET": APP_SECRET}
    del env[missing]
    # Out of the checkout, so that nim_async comes from the installed package.
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLE.parent)]
    command += ["fastapi_app:app", "--host", "127.0.0.1", "--port", str(free_port())]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert f"{missing} is not set" in run.stderr
