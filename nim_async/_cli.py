"""The ``nim-async`` command: send from the shell, run the emulator, run the demo.

Credentials come from ``NIM_APP_KEY`` and ``NIM_APP_SECRET`` (never from the
command line, where they would show in ``ps`` and shell history), the base
URL from ``NIM_BASE_URL``.

Every failure is one line on stderr, never a traceback, and the exit status
says whose it is (see ``_EXIT_STATUS``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

import anyio

from . import __version__
from ._cli_batch import add_batch_command
from ._cli_client import _FAILED, _USAGE, _client, _Exit, add_limiter_options
from ._cli_demo import _demo
from ._cli_emulator import add_emulator_command
from ._errors import ConfigurationError, NimError
from ._models import Text

__all__ = ["main"]

_DESCRIPTION = """\
Send NetEase IM (CommsEase) messages from the shell, run a local emulator of
the NIM server API, or run the demo. Credentials come from NIM_APP_KEY and
NIM_APP_SECRET, the server from NIM_BASE_URL (default: the China data centre)."""


# Exit statuses: _FAILED (1), _USAGE (2) and _MAYBE_SENT (3) are in _cli_client, with _Exit.
_INTERRUPTED = 130
_TERMINATED = 143


class _Terminated(BaseException):
    """SIGTERM outside a batch job (which stops gently on its own)."""


def _on_sigterm(number: int, frame: object) -> None:
    # Only before the event loop runs: inside it, the loop's own handler
    # (_until_terminated) cancels the command instead, since an exception
    # raised wherever the signal lands could end up inside an event-loop
    # callback and be logged there rather than stop the command.
    raise _Terminated


async def _until_terminated(
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, None]], args: argparse.Namespace
) -> None:
    """Run the command; SIGTERM cancels it and raises `_Terminated` once it has unwound."""
    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as scope:
        loop.add_signal_handler(signal.SIGTERM, scope.cancel)
        try:
            await run(args)
        finally:
            # A batch job's own signal receiver may have replaced and removed it.
            loop.remove_signal_handler(signal.SIGTERM)
    if scope.cancel_called:
        raise _Terminated


_EXIT_STATUS = """\
exit status:
  0    done; for batch, every recipient accepted or reported unregistered
  1    the server or the network refused; for batch, a chunk failed or may
       have been sent, or the job stopped with recipients unread
  2    a bad argument, setting or credential, a file that cannot be used
       (a missing CSV column, a journal of another job or held by another run,
       an output file that is an input); for batch, also a line of the input
       that cannot be read, after the summary of what was sent
  3    batch only: every recipient accepted or unregistered, except chunks that
       may have been sent and could not be settled (see --maybe-sent-to)
  130  stopped by SIGINT (Ctrl-C)
  143  stopped by SIGTERM
       (batch: after the answers in flight, with its summary and files)"""


def _lone(error: Exception) -> Exception:
    """The one error inside (nested) exception groups, else ``error`` itself.

    A failing input iterator reaches us wrapped by the bulk send's task group.
    Duck-typed: Python 3.10 has no built-in ``ExceptionGroup`` (anyio uses the backport).
    """
    while True:
        inner: Sequence[object] = getattr(error, "exceptions", ())
        if len(inner) != 1 or not isinstance(inner[0], Exception):
            return error
        error = inner[0]


def _fail(message: str, status: int) -> NoReturn:
    """Print ``message`` as one line on stderr and exit with ``status``."""
    line = " ".join(message.split())
    print(f"nim-async: {line}", file=sys.stderr)
    raise SystemExit(status)


async def _send(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        result = await client.send_msg(args.sender, args.to, Text(args.text), team=args.team)
    print(json.dumps({"msgid": result.msgid, "timetag": result.timetag}))


async def _attach(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        await client.send_attach_msg(
            args.sender,
            args.to,
            args.attach,
            team=args.team,
            offline=False if args.online_only else None,
        )
    print(json.dumps({"ok": True}))


async def _broadcast(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        sent = await client.broadcast(
            args.body,
            from_=args.sender,
            offline=True if args.offline else None,
            ttl_hours=args.ttl_hours,
            target_os=args.target_os.split(",") if args.target_os else None,
        )
    print(json.dumps({"broadcast_id": sent.broadcast_id, "expire_time": sent.expire_time}))


async def _recall(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        await client.recall(
            args.msgid,
            args.timetag,
            from_=args.sender,
            to=args.to,
            team=args.team,
            msg=args.msg,
            ignore_time=args.ignore_time,
        )
    print(json.dumps({"ok": True}))


async def _upload(args: argparse.Namespace) -> None:
    path = Path(args.file)
    _open_binary(path)
    async with _client(args) as client:
        url = await client.file_upload(
            path,
            type=args.type,
            https=True if args.https else None,
            expire_sec=args.expire_sec,
            tag=args.tag,
        )
    print(json.dumps({"url": url}))


def _open_binary(path: Path) -> None:
    """Check that ``path`` can be read, before the client is opened.

    Raises:
        _Exit: It cannot be opened (status 2).
    """
    try:
        path.open("rb").close()
    except OSError as error:
        raise _Exit(f"cannot read {path}: {error.strerror or error}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nim-async",
        description=_DESCRIPTION,
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    send = commands.add_parser("send", help="send a text message (msg/sendMsg)")
    send.add_argument("sender")
    send.add_argument("to")
    send.add_argument("text")
    send.add_argument("--team", action="store_true", help="TO is a team id")
    add_limiter_options(send)
    send.set_defaults(run=_send)

    attach = commands.add_parser("attach", help="send a system notification (msg/sendAttachMsg)")
    attach.add_argument("sender")
    attach.add_argument("to")
    attach.add_argument("attach", help="the notification, usually JSON text")
    attach.add_argument("--team", action="store_true", help="TO is a team id")
    attach.add_argument("--online-only", action="store_true", help="do not keep it offline")
    add_limiter_options(attach)
    attach.set_defaults(run=_attach)

    add_emulator_command(commands)

    broadcast = commands.add_parser("broadcast", help="broadcast to every user (msg/broadcastMsg)")
    broadcast.add_argument("body")
    broadcast.add_argument("--from", dest="sender", help="the sender's accid")
    broadcast.add_argument("--offline", action="store_true", help="keep it for offline users")
    broadcast.add_argument("--ttl-hours", type=int, help="how long the offline copy lives")
    broadcast.add_argument("--target-os", help="comma-separated: ios,aos,pc,web,mac")
    add_limiter_options(broadcast)
    broadcast.set_defaults(run=_broadcast)

    recall = commands.add_parser("recall", help="recall a message (msg/recall)")
    recall.add_argument("msgid")
    recall.add_argument("timetag", type=int)
    recall.add_argument("sender")
    recall.add_argument("to")
    recall.add_argument("--team", action="store_true", help="TO is a team id")
    recall.add_argument("--msg", help="a description of the recall")
    recall.add_argument("--ignore-time", action="store_true", help="skip the recall window")
    add_limiter_options(recall)
    recall.set_defaults(run=_recall)

    upload = commands.add_parser("upload", help="upload a file (msg/fileUpload); prints its URL")
    upload.add_argument("file")
    upload.add_argument("--type", help="the file's type, e.g. image/png")
    upload.add_argument("--https", action="store_true", help="ask for an https URL")
    upload.add_argument("--expire-sec", type=int, help="seconds until it expires (>= 86400)")
    upload.add_argument("--tag", help="the file's use, for clean-up by tag")
    add_limiter_options(upload)
    upload.set_defaults(run=_upload)

    add_batch_command(commands, epilog=_EXIT_STATUS)

    demo = commands.add_parser(
        "demo",
        help="run a burst and a killed-and-resumed bulk job against an in-process emulator",
    )
    demo.add_argument("--messages", type=int, default=300)
    demo.add_argument("--recipients", type=int, default=20_000)
    demo.add_argument("--scale", type=float, default=0.1, help="time scale of the limits")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``nim-async`` command with ``argv`` (default: the process's arguments)."""
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, None]] = args.run
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        anyio.run(_until_terminated, run, args)
    except KeyboardInterrupt:
        raise SystemExit(_INTERRUPTED) from None
    except _Terminated:
        raise SystemExit(_TERMINATED) from None
    except Exception as raised:
        error = _lone(raised)
        if isinstance(error, _Exit):
            _fail(str(error), error.status)
        if isinstance(error, ConfigurationError):
            _fail(f"{type(error).__name__}: {error}", _USAGE)
        if isinstance(error, NimError):
            _fail(f"{type(error).__name__}: {error}", _FAILED)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
