"""``nim-async emulator``: serve the NIM emulator on a port."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ._cli_demo import _DEMO_KEY, _DEMO_SECRET
from ._limits import RateLimits

__all__ = ["add_emulator_command"]


async def _emulator(args: argparse.Namespace) -> None:
    from .testing import NimEmulator

    app_key = os.environ.get("NIM_APP_KEY", _DEMO_KEY)
    app_secret = os.environ.get("NIM_APP_SECRET", _DEMO_SECRET)
    limits = RateLimits.default().scaled(args.scale) if args.scale else None
    emulator = NimEmulator(app_key, app_secret, rate_limits=limits)
    print(f"NIM emulator for app key {app_key!r} on http://{args.host}:{args.port}/nimserver/")
    await emulator.serve_forever(args.host, args.port)


def add_emulator_command(commands: Any) -> None:
    """Add the ``emulator`` subcommand to ``commands`` (argparse's subparsers)."""
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
