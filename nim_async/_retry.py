"""RetryPolicy: which failures are safe to try again, and how long to wait."""

from __future__ import annotations

import random

import attrs

from ._config import at_least, boolean, integer_at_least
from ._errors import (
    ClockSkew,
    NimConnectionError,
    NimError,
    RateLimited,
    ServerError,
)

__all__ = ["RetryPolicy"]


@attrs.frozen
class RetryPolicy:
    """What the client retries, how often, and how long it waits in between.

    A failure is retried only when a second attempt cannot deliver the same
    message twice, unless you opt in:

    - always safe: the connection was never made, no pooled connection was free
      (the request never left), and code 416 (the server refused the call; the
      retry waits out the block first, so only a block of at most
      ``max_block_wait`` seconds is waited out: a longer one raises
      ``RateLimited`` at once, its ``retry_after`` the block's length);
    - ambiguous: a read timeout, a dropped connection after the request went
      out, code 500/503/514 or an HTTP 5xx gateway answer. The server may have
      carried the call out, so these are retried only for idempotent actions
      (recall, one-way delete, roam-session delete, uploads) or when
      ``retry_ambiguous`` is true.

    Codes that describe the request itself (414, 403, 404, 431, 508, ...) are
    never retried.

    Args:
        max_attempts: Attempts in all, the first included. 1 turns retries off.
        backoff_base: Seconds before the second attempt; doubled for each one after.
        backoff_cap: The longest wait between two attempts, in seconds.
        jitter: Wait a random time between 0 and the backoff ("full jitter"),
            so that many clients retrying together spread out.
        retry_ambiguous: Also retry failures that the server may have carried
            out, for every action. A send retried this way can arrive twice.
        max_block_wait: The longest block after a 416, in seconds, that a retry
            waits out. The default, 60, covers the documented blocks of NetEase's
            frequency-control table for messages (10 s for most actions, 60 s
            for batch sends and broadcasts) and refuses the day-long block of
            ``job/nos/del``: no call sleeps a day unseen. The call's own
            ``max_wait`` bounds the wait too.
    """

    max_attempts: int = attrs.field(default=3, validator=integer_at_least(1))
    backoff_base: float = attrs.field(default=0.2, validator=at_least(0))
    backoff_cap: float = attrs.field(default=5.0, validator=at_least(0))
    jitter: bool = attrs.field(default=True, validator=boolean)
    retry_ambiguous: bool = attrs.field(default=False, validator=boolean)
    max_block_wait: float = attrs.field(default=60.0, validator=at_least(0))

    def should_retry(self, error: NimError, *, attempt: int, idempotent: bool) -> bool:
        """Tell whether the call that failed with ``error`` on ``attempt`` may be tried again.

        Args:
            error: What the attempt raised.
            attempt: The attempt that failed, counting from 1.
            idempotent: Whether repeating the action has no further effect.

        Returns:
            True when attempts are left and a repeat cannot do harm the caller
            did not accept.
        """
        if attempt >= self.max_attempts:
            return False
        if isinstance(error, RateLimited):
            # A refusal made before acting; the retry waits out the block
            # (retry_after, when the client knows it), if it is short enough.
            return error.retry_after is None or error.retry_after <= self.max_block_wait
        if isinstance(error, ClockSkew):
            # A refusal made before acting, and the clock is corrected by now.
            return True
        if isinstance(error, NimConnectionError):
            return not error.may_have_reached_server or idempotent or self.retry_ambiguous
        if isinstance(error, ServerError):
            return idempotent or self.retry_ambiguous
        return False

    def backoff(self, attempt: int) -> float:
        """Return the seconds to wait after failed ``attempt`` (counting from 1)."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling) if self.jitter else ceiling
