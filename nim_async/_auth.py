"""CheckSum signing: fresh headers for every attempt, also as an ``httpx.Auth``."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncGenerator, Callable, Generator

import httpx

__all__ = ["CheckSumAuth", "checksum"]


def checksum(app_secret: str, nonce: str, cur_time: str) -> str:
    """Return NIM's CheckSum: ``sha1(AppSecret + Nonce + CurTime)`` as lowercase hex.

    Args:
        app_secret: The app secret.
        nonce: The request's random nonce (at most 128 characters).
        cur_time: Unix time in seconds, as the decimal string sent in ``CurTime``.

    Returns:
        40 lowercase hexadecimal characters.
    """
    return hashlib.sha1((app_secret + nonce + cur_time).encode()).hexdigest()


class CheckSumAuth(httpx.Auth):
    """Sign each request with ``AppKey``, ``Nonce``, ``CurTime`` and ``CheckSum``.

    httpx runs ``auth_flow`` for every request it sends, so a retry gets a new
    nonce and a new CurTime: the server accepts a CheckSum only while CurTime is
    within five minutes of its clock (NetEase's 接口概述: a client that reuses one
    CheckSum for longer gets 414).
    """

    __slots__ = ("_app_key", "_app_secret", "_clock", "_key_header", "_secret_bytes")

    def __init__(
        self, app_key: str, app_secret: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._app_key = app_key
        self._app_secret = app_secret
        self._clock = clock
        # Encoded once: every attempt of every call signs with them.
        self._key_header = ("AppKey", app_key)
        self._secret_bytes = app_secret.encode()

    def __repr__(self) -> str:
        return f"CheckSumAuth(app_key={self._app_key!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the four signing headers on ``request`` and send it."""
        self._sign(request)
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Set the four signing headers on ``request`` and send it (no I/O to await)."""
        self._sign(request)
        yield request

    def headers(self) -> list[tuple[str, str]]:
        """A fresh ``AppKey``, ``Nonce``, ``CurTime`` and ``CheckSum``, as header pairs."""
        # 16 bytes from the OS's CSPRNG (what secrets.token_hex reads, without
        # its layers) as 32 hex characters: well inside the 128-character limit.
        nonce = os.urandom(16).hex()
        cur_time = str(int(self._clock()))
        digest = hashlib.sha1(self._secret_bytes + (nonce + cur_time).encode()).hexdigest()
        return [self._key_header, ("Nonce", nonce), ("CurTime", cur_time), ("CheckSum", digest)]

    def _sign(self, request: httpx.Request) -> None:
        for name, value in self.headers():
            request.headers[name] = value
