"""The ``nim-async`` command: send from the shell, run the emulator, run the demo.

Credentials come from ``NIM_APP_KEY`` and ``NIM_APP_SECRET`` (never from the
command line, where they would show in ``ps`` and shell history), the base
URL from ``NIM_BASE_URL``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anyio

from ._client import CHINA_URL, NimClient
from ._errors import NimError
from ._limits import RateLimits
from ._models import Text

__all__ = ["main"]

_DEMO_KEY = "demo-app-key"
_DEMO_SECRET = "demo-app-secret"


def _credentials() -> tuple[str, str]:
    try:
        return os.environ["NIM_APP_KEY"], os.environ["NIM_APP_SECRET"]
    except KeyError as missing:
        raise SystemExit(f"nim-async: set {missing.args[0]} in the environment") from None


def _client() -> NimClient:
    app_key, app_secret = _credentials()
    return NimClient(app_key, app_secret, base_url=os.environ.get("NIM_BASE_URL", CHINA_URL))


async def _send(args: argparse.Namespace) -> None:
    async with _client() as client:
        result = await client.send_msg(args.sender, args.to, Text(args.text), team=args.team)
    print(json.dumps({"msgid": result.msgid, "timetag": result.timetag}))


async def _attach(args: argparse.Namespace) -> None:
    async with _client() as client:
        await client.send_attach_msg(
            args.sender,
            args.to,
            args.attach,
            team=args.team,
            offline=False if args.online_only else None,
        )
    print(json.dumps({"ok": True}))


async def _emulator(args: argparse.Namespace) -> None:
    from .testing import NimEmulator

    app_key = os.environ.get("NIM_APP_KEY", _DEMO_KEY)
    app_secret = os.environ.get("NIM_APP_SECRET", _DEMO_SECRET)
    limits = RateLimits.default().scaled(args.scale) if args.scale else None
    emulator = NimEmulator(app_key, app_secret, rate_limits=limits)
    print(f"NIM emulator for app key {app_key!r} on http://{args.host}:{args.port}/nimserver/")
    await emulator.serve_forever(args.host, args.port)


async def _demo(args: argparse.Namespace) -> None:
    """Send a burst of messages and notifications to an in-process emulator that
    enforces the real limits in compressed time, and report what happened."""
    from .testing import NimEmulator

    limits = RateLimits.default().scaled(args.scale)
    emulator = NimEmulator(_DEMO_KEY, _DEMO_SECRET, rate_limits=limits)
    started = time.perf_counter()
    async with (
        NimClient(
            _DEMO_KEY,
            _DEMO_SECRET,
            base_url="http://nim.demo/nimserver/",
            transport=emulator.transport(),
            rate_limits=limits,
        ) as client,
        anyio.create_task_group() as group,
    ):
        for number in range(args.messages):
            group.start_soon(client.send_msg, "demo-sender", f"user{number}", Text("hello"))
            group.start_soon(client.send_attach_msg, "demo-sender", f"user{number}", {"n": number})
    elapsed = time.perf_counter() - started
    codes: dict[int, int] = {}
    for call in emulator.calls:
        codes[call.code or call.status] = codes.get(call.code or call.status, 0) + 1
    print(f"sent {args.messages} messages and {args.messages} notifications in {elapsed:.2f} s")
    print(f"limits: 100 calls per {limits.for_action('msg/sendMsg').rates[0].per:g} s per action")
    print(f"server answers: {dict(sorted(codes.items()))}")
    print(f"messages stored by the emulator: {len(emulator.messages)}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nim-async", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    send = commands.add_parser("send", help="send a text message (msg/sendMsg)")
    send.add_argument("sender")
    send.add_argument("to")
    send.add_argument("text")
    send.add_argument("--team", action="store_true", help="TO is a team id")
    send.set_defaults(run=_send)

    attach = commands.add_parser("attach", help="send a system notification (msg/sendAttachMsg)")
    attach.add_argument("sender")
    attach.add_argument("to")
    attach.add_argument("attach", help="the notification, usually JSON text")
    attach.add_argument("--team", action="store_true", help="TO is a team id")
    attach.add_argument("--online-only", action="store_true", help="do not keep it offline")
    attach.set_defaults(run=_attach)

    emulator = commands.add_parser("emulator", help="serve the NIM emulator on a port")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8000)
    emulator.add_argument(
        "--scale",
        type=float,
        default=0.0,
        help="enforce the default rate limits with time scaled by this factor (0: no limits)",
    )
    emulator.set_defaults(run=_emulator)

    demo = commands.add_parser("demo", help="run a burst against an in-process emulator")
    demo.add_argument("--messages", type=int, default=300)
    demo.add_argument("--scale", type=float, default=0.1, help="time scale of the limits")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``nim-async`` command with ``argv`` (default: the process's arguments)."""
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, None]] = args.run
    try:
        anyio.run(run, args)
    except NimError as error:
        print(f"nim-async: {type(error).__name__}: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
