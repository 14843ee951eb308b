"""``nim-async emulator``: serve the NIM emulator on a port."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

from ._cli_client import _Exit
from ._cli_demo import _DEMO_KEY, _DEMO_SECRET
from ._limits import RateLimits

__all__ = ["add_emulator_command"]

_STATE_PATH = "/emulator/state"
_DESCRIPTION = f"""\
Serve a stand-in for NIM's server API on a port, for tests and demos: it checks
signatures and parameters, knows which accounts exist, stores the messages it
accepts and answers as NIM does, until Ctrl-C (SIGINT) or SIGTERM stops it.

The app key and secret come from NIM_APP_KEY and NIM_APP_SECRET (default: the
demo app's). Point a client at http://HOST:PORT/nimserver/.

What it received and stored is JSON at GET http://HOST:PORT{_STATE_PATH}
(no signature needed), and in the --dump file once it stops:
  {{"app_key": ..., "accounts": [...] or null, "unregistered": [...],
   "calls": [{{"action", "status", "code", "at", "form", "files"}}, ...],
   "messages": [{{"action", "msgid", "timetag", "from", "to", "team", "type",
                 "body", "attach", "recalled", "deleted_one_way", "deleted",
                 "read_by"}}, ...]}}"""
_EXIT_STATUS = """\
exit status:
  2    a bad argument, a file that cannot be read or written, an address that
       cannot be bound
  130  stopped by SIGINT (Ctrl-C)
  143  stopped by SIGTERM
  Either signal first shuts the server down: the summary is printed and the
  --dump file written."""


def _accids(path: str) -> list[str]:
    """The accids in ``path``, one per line; blank lines and a byte order mark dropped.

    Raises:
        _Exit: It cannot be read, or is not UTF-8 text (status 2).
    """
    try:
        with open(path, encoding="utf-8-sig") as lines:
            return [accid for line in lines if (accid := line.strip())]
    except OSError as error:
        raise _Exit(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise _Exit(f"cannot read {path}: not UTF-8 text") from None


def _check_writable(path: str) -> None:
    """Check, before serving, that ``path`` can be written when the emulator stops.

    Raises:
        _Exit: ``path`` is a directory, or no file can be created beside it (status 2).
    """
    if os.path.isdir(path):
        raise _Exit(f"cannot write {path}: it is a directory")
    try:
        tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(path))).close()
    except OSError as error:
        raise _Exit(f"cannot write {path}: {error.strerror or error}") from None


async def _emulator(args: argparse.Namespace) -> None:
    from .testing import NimEmulator

    accounts = None if args.accounts is None else _accids(args.accounts)
    unregistered = None if args.unregistered is None else _accids(args.unregistered)
    if args.dump is not None:
        _check_writable(args.dump)
    app_key = os.environ.get("NIM_APP_KEY", _DEMO_KEY)
    app_secret = os.environ.get("NIM_APP_SECRET", _DEMO_SECRET)
    limits = RateLimits.default().scaled(args.scale) if args.scale else None
    emulator = NimEmulator(
        app_key, app_secret, accounts=accounts, unregistered=unregistered, rate_limits=limits
    )
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"NIM emulator for app key {app_key!r} on http://{host}:{args.port}/nimserver/")
    if accounts is not None:
        print(f"{len(set(accounts))} accounts exist; every other accid is unregistered")
    if unregistered is not None:
        print(f"every accid exists except {len(set(unregistered))} unregistered ones")
    print(f"what it stored: http://{host}:{args.port}{_STATE_PATH}", flush=True)
    try:
        await emulator.serve_forever(args.host, args.port, dump=args.dump)
    except OSError as error:
        reason = error.strerror or error
        if args.dump is not None and error.filename == args.dump:
            raise _Exit(f"cannot write {args.dump}: {reason}") from None
        raise _Exit(f"cannot serve on {host}:{args.port}: {reason}") from None


def add_emulator_command(commands: Any) -> None:
    """Add the ``emulator`` subcommand to ``commands`` (argparse's subparsers)."""
    emulator = commands.add_parser(
        "emulator",
        help="serve the NIM emulator on a port",
        description=_DESCRIPTION,
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    emulator.add_argument("--host", default="127.0.0.1", help="the address to bind (127.0.0.1)")
    emulator.add_argument("--port", type=int, default=8000, help="the port to bind (8000)")
    emulator.add_argument(
        "--scale",
        type=float,
        default=0.0,
        help="enforce the default rate limits with time scaled by this factor (0: no limits)",
    )
    who = emulator.add_mutually_exclusive_group()
    who.add_argument(
        "--accounts",
        metavar="FILE",
        help="the accids that exist, one per line; every other accid is unregistered "
        "(default: every accid exists)",
    )
    who.add_argument(
        "--unregistered",
        metavar="FILE",
        help="the accids that do not exist, one per line; every other accid exists",
    )
    emulator.add_argument(
        "--dump",
        metavar="FILE",
        help=f"when stopped, write what it received and stored to FILE as JSON, the same "
        f"as GET {_STATE_PATH} (written whole or not at all)",
    )
    emulator.set_defaults(run=_emulator)
