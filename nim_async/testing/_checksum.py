"""The service's check of the four signing headers (NetEase's API calling convention).

``CheckSum = sha1(AppSecret + Nonce + CurTime)`` in lowercase hex; ``Nonce`` at
most 128 characters; ``CurTime`` Unix seconds within five minutes of the
service's clock. Any failure is a 414 whose ``desc`` names the header; it never
contains the secret or the expected checksum.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

__all__ = ["CURTIME_TOLERANCE", "auth_problem", "checksum"]

CURTIME_TOLERANCE = 300  # seconds: "within ±5 minutes of the server's clock"
_SECONDS = re.compile(r"[0-9]+")


def checksum(app_secret: str, nonce: str, cur_time: str) -> str:
    """The CheckSum the service expects: sha1 of the three strings, lowercase hex."""
    return hashlib.sha1((app_secret + nonce + cur_time).encode("utf-8")).hexdigest()


def auth_problem(
    headers: Mapping[str, str], app_key: str, app_secret: str, now: float
) -> str | None:
    """Check a request's signing headers.

    Args:
        headers: The request headers, names in lower case.
        app_key: The emulated app's key.
        app_secret: The emulated app's secret.
        now: The service's clock, Unix seconds.

    Returns:
        What is wrong, naming the header; ``None`` if the request is signed correctly.
    """
    key = headers.get("appkey")
    if not key:
        return "missing AppKey header"
    if key != app_key:
        return "AppKey header is not this app's key"
    nonce = headers.get("nonce")
    if not nonce:
        return "missing Nonce header"
    if len(nonce) > 128:
        return "Nonce header is longer than 128 characters"
    cur_time = headers.get("curtime")
    if not cur_time:
        return "missing CurTime header"
    if not _SECONDS.fullmatch(cur_time):
        return "CurTime header must be Unix time in integer seconds"
    if abs(int(cur_time) - now) > CURTIME_TOLERANCE:
        return f"CurTime header is more than {CURTIME_TOLERANCE} s away from the server's clock"
    given = headers.get("checksum")
    if not given:
        return "missing CheckSum header"
    expected = checksum(app_secret, nonce, cur_time)
    # Case matters: NetEase's 接口概述 says lowercase hex, and so does this check.
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        return "CheckSum header does not match sha1(AppSecret + Nonce + CurTime)"
    return None
