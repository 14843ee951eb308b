"""The server's clock, as its answers tell it: what CheckSum signatures are timed by.

A signature is accepted only while ``CurTime`` is within five minutes of the
server's clock (NetEase's server API documentation, 接口概述: "CurTime"); a
host whose clock is further off gets 414 on every call. Every answer carries an
HTTP ``Date`` header, a 414 too, so the client learns the server's time from it
and signs with the corrected time from then on.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

__all__ = ["CURTIME_TOLERANCE", "SKEW_TO_CORRECT", "ServerClock"]

logger = logging.getLogger("nim_async")

CURTIME_TOLERANCE = 300.0  # seconds: "within ±5 minutes of the server's clock"
# A Date header has whole seconds and the answer took a moment to arrive: an
# offset below this is noise, not a wrong clock.
SKEW_TO_CORRECT = 30.0


class ServerClock:
    """The local clock, corrected by what the server's ``Date`` headers say.

    Args:
        local: The local wall clock, Unix seconds.
    """

    __slots__ = ("_last_date", "_local", "_warned", "offset")

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self._warned = False
        self.offset = 0.0
        # A Date has whole seconds: most answers repeat the last one's, parsed once.
        self._last_date: tuple[str, float] = ("", 0.0)

    def now(self) -> float:
        """The server's time as far as we know it, Unix seconds: what ``CurTime`` is signed with."""
        return self._local() + self.offset

    def observe(self, date_header: str | None) -> float | None:
        """Learn from one answer's ``Date``; return the skew it showed, or None.

        When the local clock is off by more than ``SKEW_TO_CORRECT`` seconds,
        signatures use the server's time from then on, and a WARNING says so once.
        """
        if not date_header:
            return None
        if date_header == self._last_date[0]:
            server = self._last_date[1]
        else:
            try:
                server = _http_date(date_header)
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
            self._last_date = (date_header, server)
        skew = server - self._local()
        if abs(skew - self.offset) <= SKEW_TO_CORRECT:
            return None
        self.offset = float(round(skew))
        if not self._warned:
            self._warned = True
            logger.warning(
                "the local clock is %+.0f s off the NIM server's (its Date header): "
                "signing with the server's time from now on; fix the host's clock (NTP)",
                -skew,
            )
        return skew


def _http_date(header: str) -> float:
    """Unix seconds of an HTTP ``Date``, which is always GMT (RFC 9110, section 5.6.7).

    ``parsedate_to_datetime`` gives a naive datetime for a date without a zone or
    with ``-0000``, and ``.timestamp()`` would read that as local time: on a host in
    UTC+8 every signature would then be eight hours off, and every call 414.
    """
    moment = parsedate_to_datetime(header)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()
