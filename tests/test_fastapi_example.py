"""examples/fastapi_app.py over real sockets: uvicorn on one loopback port, the emulator on
another, and HTTP requests from outside, as a deployment would see them."""

from __future__ import annotations

import asyncio
import importlib.util
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


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def emulator() -> NimEmulator:
    return NimEmulator(APP_KEY, APP_SECRET)


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
def service(emulator: NimEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The example app against the served emulator; sendMsg allowed twice a minute."""
    monkeypatch.setenv("NIM_APP_KEY", APP_KEY)
    monkeypatch.setenv("NIM_APP_SECRET", APP_SECRET)
    limits = nim.RateLimits().with_action("sendMsg", nim.Rate(2, 60))
    with emulator.serve() as nim_url:
        app = _example().create_app(
            base_url=nim_url, rate_limits=limits, limiter=nim.LocalLimiter()
        )
        yield from _serve(app)


def test_notify_batch_and_recall_go_through_the_service(
    service: str, emulator: NimEmulator
) -> None:
    """Each route answers what the NIM server answered it."""
    with httpx.Client(base_url=service, timeout=30) as http:
        sent = http.post("/notify", json={"sender": "alice", "to": "bob", "text": "hi"})
        assert sent.status_code == 200
        batch = http.post("/batch", json={"sender": "alice", "to": ["bob", "carol"], "text": "all"})
        assert batch.status_code == 200
        assert batch.json()["accepted"] == 2
        recalled = http.post("/recall", json={"sender": "alice", "to": "bob", **sent.json()})
        assert recalled.json() == {"recalled": True}
    assert [call.action for call in emulator.calls] == [
        "msg/sendMsg",
        "msg/sendBatchMsg",
        "msg/recall",
    ]
    assert emulator.messages[0].recalled


def test_errors_map_to_422_429_and_502(service: str, emulator: NimEmulator) -> None:
    """Bad input 422; a slot later than max_wait 429 with Retry-After; a server error 502."""
    with httpx.Client(base_url=service, timeout=30) as http:
        bad = http.post("/notify", json={"sender": "alice", "to": "b" * 33, "text": "hi"})
        assert bad.status_code == 422
        assert bad.json()["parameter"] == "to"
        emulator.fail_next("msg/sendMsg", 500)
        upstream = http.post("/notify", json={"sender": "alice", "to": "bob", "text": "1"})
        assert upstream.status_code == 502
        assert upstream.json()["code"] == 500
        http.post("/notify", json={"sender": "alice", "to": "bob", "text": "2"})
        busy = http.post("/notify", json={"sender": "alice", "to": "bob", "text": "3"})
        assert busy.status_code == 429
        assert int(busy.headers["Retry-After"]) >= 1
    assert [call.code for call in emulator.calls] == [500, 200]


def test_an_unreachable_nim_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens where NIM should be: 503, saying the request never reached it."""
    monkeypatch.setenv("NIM_APP_KEY", APP_KEY)
    monkeypatch.setenv("NIM_APP_SECRET", APP_SECRET)
    dead = f"http://127.0.0.1:{free_port()}/nimserver/"
    app = _example().create_app(base_url=dead, rate_limits=None, limiter=nim.LocalLimiter())
    for url in _serve(app):
        with httpx.Client(base_url=url, timeout=30) as http:
            answer = http.post("/notify", json={"sender": "alice", "to": "bob", "text": "hi"})
        assert answer.status_code == 503
        assert answer.json()["may_have_reached_server"] is False
