"""A stand-in NIM server for tests and demos: ``from nim_async.testing import NimEmulator``.

Needs the ``emulator`` extra (Starlette, python-multipart, uvicorn) to serve;
importing this package does not, so the pytest plugin loads without it.
"""

from ._delivered import assert_delivered, deliveries
from ._emulator import NimEmulator
from ._records import (
    Call,
    NosTask,
    ReadReceipt,
    RoamDeletion,
    StoredBroadcast,
    StoredMessage,
    Upload,
)

__all__ = [
    "Call",
    "NimEmulator",
    "NosTask",
    "ReadReceipt",
    "RoamDeletion",
    "StoredBroadcast",
    "StoredMessage",
    "Upload",
    "assert_delivered",
    "deliveries",
]
