"""The ``nim-async`` command: send from the shell, run the emulator, run the demo.

Credentials come from ``NIM_APP_KEY`` and ``NIM_APP_SECRET`` (never from the
command line, where they would show in ``ps`` and shell history), the base
URL from ``NIM_BASE_URL``.

Every failure is one line on stderr, never a traceback, and the exit status
says whose it is (see ``_EXIT_STATUS``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import anyio

from ._client import CHINA_URL, NimClient
from ._errors import ConfigurationError, NimError
from ._limits import RateLimits
from ._models import Text
from ._results import BatchResult, Progress

__all__ = ["main"]

_DEMO_KEY = "demo-app-key"
_DEMO_SECRET = "demo-app-secret"

# Exit statuses (issue 9): 1 is the server's or the network's answer, 2 is the
# user's own input (arguments, settings, credentials, files), as argparse's 2.
_FAILED = 1
_USAGE = 2
_INTERRUPTED = 130
_EXIT_STATUS = """\
exit status:
  0    done; for batch, every recipient accepted or reported unregistered
  1    the server or the network refused; for batch, any chunk failed
  2    a bad argument, setting or credential, or a file that cannot be used
  130  interrupted"""


class _Exit(Exception):
    """End the command with ``message`` on stderr and exit ``status``.

    Raised inside the running job and turned into ``SystemExit`` by ``main``,
    outside the event loop.
    """

    def __init__(self, message: str, status: int = _USAGE) -> None:
        super().__init__(message)
        self.status = status


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


def _credentials() -> tuple[str, str]:
    try:
        return os.environ["NIM_APP_KEY"], os.environ["NIM_APP_SECRET"]
    except KeyError as missing:
        raise _Exit(f"set {missing.args[0]} in the environment") from None


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


async def _broadcast(args: argparse.Namespace) -> None:
    async with _client() as client:
        sent = await client.broadcast(
            args.body,
            from_=args.sender,
            offline=True if args.offline else None,
            ttl_hours=args.ttl_hours,
            target_os=args.target_os.split(",") if args.target_os else None,
        )
    print(json.dumps({"broadcast_id": sent.broadcast_id, "expire_time": sent.expire_time}))


async def _recall(args: argparse.Namespace) -> None:
    async with _client() as client:
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
    async with _client() as client:
        url = await client.file_upload(
            path,
            type=args.type,
            https=True if args.https else None,
            expire_sec=args.expire_sec,
            tag=args.tag,
        )
    print(json.dumps({"url": url}))


def _open_text(source: str) -> contextlib.AbstractContextManager[TextIO]:
    """Open ``source`` for reading ("-" is stdin, left open), before anything is sent.

    Raises:
        _Exit: It cannot be opened (status 2).
    """
    if source == "-":
        return contextlib.nullcontext(sys.stdin)
    try:
        return open(source, encoding="utf-8")
    except OSError as error:
        raise _Exit(f"cannot read {source}: {error.strerror or error}") from None


def _open_binary(path: Path) -> None:
    """Check that ``path`` can be read, before the client is opened.

    Raises:
        _Exit: It cannot be opened (status 2).
    """
    try:
        path.open("rb").close()
    except OSError as error:
        raise _Exit(f"cannot read {path}: {error.strerror or error}") from None


def _accids(stream: TextIO, source: str) -> Iterator[str]:
    """Read accids one per line, lazily, from an open file; blank lines skipped.

    The caller opens the file before the job starts (``_open_text``), so that a
    missing file stops the command before anything is sent.

    Raises:
        _Exit: The file is not UTF-8 text (status 2).
    """
    try:
        for line in stream:
            if accid := line.strip():
                yield accid
    except UnicodeDecodeError:
        raise _Exit(f"cannot read {source}: not UTF-8 text") from None


class _ProgressBar:
    """A one-line progress display, redrawn after every chunk; silent when not on a terminal."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._width = width
        self.drawn = False

    def __call__(self, progress: Progress) -> None:
        if not self._stream.isatty():
            return
        self.drawn = True
        if progress.total:
            filled = self._width * progress.done // progress.total
            bar = "#" * filled + "." * (self._width - filled)
            where = f"[{bar}] {progress.done:,}/{progress.total:,}"
        else:
            where = f"{progress.done:,} recipients"
        print(f"\r{where}, {progress.failed_chunks} failed chunks", end="", file=self._stream)

    def close(self) -> None:
        """End the bar's line, if one was drawn."""
        if self.drawn:
            print(file=self._stream)


def _report(result: BatchResult, failed_to: str | None) -> None:
    """Print the summary line, write ``failed_to``, and exit 1 if any chunk failed."""
    unsent = [a for chunk in result.failed if not chunk.may_have_been_sent for a in chunk.accids]
    summary = {
        "accepted": result.accepted,
        "unregistered": len(result.unregister),
        "failed_chunks": len(result.failed),
        "surely_unsent": len(unsent),
        "maybe_sent": result.failed_count - len(unsent),
        "calls": result.calls,
    }
    # The summary first: a --failed-to that cannot be written must not hide
    # what a long job did.
    print(json.dumps(summary), flush=True)
    if failed_to is not None:
        try:
            with open(failed_to, "w", encoding="utf-8") as out:
                out.writelines(f"{accid}\n" for accid in unsent)
        except OSError as error:
            raise _Exit(f"cannot write {failed_to}: {error.strerror or error}") from None
    if result.failed:
        first = result.failed[0].error
        raise _Exit(
            f"{len(result.failed)} chunks failed ({result.failed_count} recipients); "
            f"first error: {type(first).__name__}: {first}",
            _FAILED,
        )


async def _batch(args: argparse.Namespace) -> None:
    bar = _ProgressBar()
    async with _client() as client:
        with _open_text(args.to) as stream:
            if args.attach:
                result = await client.send_batch_attach_msg(
                    args.sender, _accids(stream, args.to), args.content, on_progress=bar
                )
            else:
                result = await client.send_batch_msg(
                    args.sender, _accids(stream, args.to), Text(args.content), on_progress=bar
                )
    bar.close()
    _report(result, args.failed_to)


async def _emulator(args: argparse.Namespace) -> None:
    from .testing import NimEmulator

    app_key = os.environ.get("NIM_APP_KEY", _DEMO_KEY)
    app_secret = os.environ.get("NIM_APP_SECRET", _DEMO_SECRET)
    limits = RateLimits.default().scaled(args.scale) if args.scale else None
    emulator = NimEmulator(app_key, app_secret, rate_limits=limits)
    print(f"NIM emulator for app key {app_key!r} on http://{args.host}:{args.port}/nimserver/")
    await emulator.serve_forever(args.host, args.port)


async def _demo(args: argparse.Namespace) -> None:
    """Run a burst and a bulk job against an in-process emulator that enforces the
    real limits in compressed time and fails some calls, and report what happened."""
    from .testing import NimEmulator

    limits = RateLimits.default().scaled(args.scale)
    registered = [f"user{number}" for number in range(args.recipients * 9 // 10)]
    emulator = NimEmulator(
        _DEMO_KEY, _DEMO_SECRET, rate_limits=limits, accounts=["demo-sender", *registered]
    )
    # Every 7th batch call is refused (419, not carried out): the job goes on,
    # and the chunks that surely did not go are resent afterwards.
    emulator.fail_every("msg/sendBatchAttachMsg", 7, 419, desc="injected refusal")

    async def recipients() -> AsyncIterator[str]:
        for number in range(args.recipients):
            yield f"user{number}"

    started = time.perf_counter()
    async with NimClient(
        _DEMO_KEY,
        _DEMO_SECRET,
        base_url="http://nim.demo/nimserver/",
        transport=emulator.transport(),
        rate_limits=limits,
    ) as client:
        async with anyio.create_task_group() as group:
            for number in range(args.messages):
                group.start_soon(client.send_msg, "demo-sender", f"user{number}", Text("hello"))
        print(
            f"burst: {args.messages} messages in {time.perf_counter() - started:.2f} s "
            f"(limit 100 per {limits.for_action('msg/sendMsg').rates[0].per:g} s)"
        )

        started = time.perf_counter()
        bar = _ProgressBar()
        result = await client.send_batch_attach_msg(
            "demo-sender", recipients(), {"event": "sale"}, on_progress=bar
        )
        bar.close()
        print(
            f"bulk: {args.recipients:,} recipients in {time.perf_counter() - started:.2f} s: "
            f"{result.accepted:,} accepted, {len(result.unregister):,} unregistered, "
            f"{len(result.failed)} chunks failed ({result.failed_count:,} recipients)"
        )
        emulator.fail_every("msg/sendBatchAttachMsg", 0, 419)
        resend = result.resendable()
        again = await client.send_batch_attach_msg("demo-sender", resend, {"event": "sale"})
        print(
            f"resent {len(resend):,} surely-unsent recipients: {again.accepted:,} accepted, "
            f"{len(again.unregister):,} unregistered, {len(again.failed)} chunks failed"
        )
    codes: dict[int, int] = {}
    for call in emulator.calls:
        codes[call.code or call.status] = codes.get(call.code or call.status, 0) + 1
    deliveries = Counter(m.to for m in emulator.messages if m.action == "msg/sendBatchAttachMsg")
    once = sum(count == 1 for count in deliveries.values())
    print(f"server answers: {dict(sorted(codes.items()))}, {codes.get(416, 0)} blocked (416)")
    print(
        f"registered recipients notified exactly once: {once:,} of {len(registered):,}; "
        f"twice or more: {sum(count > 1 for count in deliveries.values())}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nim-async",
        description=__doc__.splitlines()[0],
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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

    broadcast = commands.add_parser("broadcast", help="broadcast to every user (msg/broadcastMsg)")
    broadcast.add_argument("body")
    broadcast.add_argument("--from", dest="sender", help="the sender's accid")
    broadcast.add_argument("--offline", action="store_true", help="keep it for offline users")
    broadcast.add_argument("--ttl-hours", type=int, help="how long the offline copy lives")
    broadcast.add_argument("--target-os", help="comma-separated: ios,aos,pc,web,mac")
    broadcast.set_defaults(run=_broadcast)

    recall = commands.add_parser("recall", help="recall a message (msg/recall)")
    recall.add_argument("msgid")
    recall.add_argument("timetag", type=int)
    recall.add_argument("sender")
    recall.add_argument("to")
    recall.add_argument("--team", action="store_true", help="TO is a team id")
    recall.add_argument("--msg", help="a description of the recall")
    recall.add_argument("--ignore-time", action="store_true", help="skip the recall window")
    recall.set_defaults(run=_recall)

    upload = commands.add_parser("upload", help="upload a file (msg/fileUpload); prints its URL")
    upload.add_argument("file")
    upload.add_argument("--type", help="the file's type, e.g. image/png")
    upload.add_argument("--https", action="store_true", help="ask for an https URL")
    upload.add_argument("--expire-sec", type=int, help="seconds until it expires (>= 86400)")
    upload.add_argument("--tag", help="the file's use, for clean-up by tag")
    upload.set_defaults(run=_upload)

    batch = commands.add_parser(
        "batch",
        help="send a text (or, with --attach, a notification) to many accids",
        description="Send to many accids; prints a JSON summary, exits 1 if any chunk failed.",
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("sender")
    batch.add_argument("content", help="the text, or the notification with --attach")
    batch.add_argument("--to", default="-", help="a file of accids, one per line (- = stdin)")
    batch.add_argument("--attach", action="store_true", help="send a system notification")
    batch.add_argument(
        "--failed-to", metavar="FILE", help="write the accids that surely were not sent"
    )
    batch.set_defaults(run=_batch)

    demo = commands.add_parser("demo", help="run a burst against an in-process emulator")
    demo.add_argument("--messages", type=int, default=300)
    demo.add_argument("--recipients", type=int, default=20_000)
    demo.add_argument("--scale", type=float, default=0.1, help="time scale of the limits")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``nim-async`` command with ``argv`` (default: the process's arguments)."""
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, None]] = args.run
    try:
        anyio.run(run, args)
    except KeyboardInterrupt:
        raise SystemExit(_INTERRUPTED) from None
    except Exception as raised:
        error = _lone(raised)
        if isinstance(error, _Exit):
            _fail(str(error), error.status)
        if isinstance(error, ConfigurationError):
            _fail(f"{type(error).__name__}: {error}", _USAGE)
        if isinstance(error, NimError):
            _fail(f"{type(error).__name__}: {error}", _FAILED)
        raise
