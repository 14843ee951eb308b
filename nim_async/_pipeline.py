"""The one request pipeline every endpoint goes through.

validate → acquire the rate limit → sign → POST → decode → map the code to a
result or an exception → retry if (and only if) safe.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    nullcontext,
)
from typing import TypeVar, cast

import anyio
import attrs

from ._actions import canonical_action
from ._admission import Admission
from ._clock import ServerClock
from ._deadlines import Deadlines
from ._endpoints import Answer, Endpoint
from ._errors import (
    ClientStateError,
    InvalidRequest,
    MalformedAnswer,
    NimAPIError,
    NimError,
    NimTimeout,
    RateLimited,
    SlotTimeout,
)
from ._fields import Form, json_text, not_a_list, safe_repr
from ._fifo import FifoSemaphore
from ._http import Hosts, exchange
from ._limits import ActionLimits, Limiter, LimiterStats, RateLimits, bounded_wait
from ._results import BatchEstimate, estimate
from ._retry import RetryPolicy
from ._telemetry import telemetry
from ._uploads import Upload
from ._validate import check_recipients, validate
from ._wire import Wire

__all__ = ["Pipeline"]

logger = logging.getLogger("nim_async")

T = TypeVar("T")


class _Lifecycle:
    """Whether the client is closed, and the calls waiting for a slot (to end their wait)."""

    __slots__ = ("closed", "waiting")

    def __init__(self) -> None:
        self.closed = False
        self.waiting: set[anyio.CancelScope] = set()


@attrs.define
class _Tally:
    """The running counts behind one action's ``LimiterStats``."""

    calls: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    rate_limited: int = 0


# The slot of an action without limits: nothing to wait for, nothing to give back.
_NO_SLOT: AbstractAsyncContextManager[None] = nullcontext()


class Pipeline:
    """Sends endpoint calls through validation, the limiter, signing, retries and decoding.

    ``retry``, ``rate_limits``, ``hold`` and ``max_wait`` are read at every
    call, so the client's settings take effect when they are set.

    Waits are bounded: a call waits at most ``max_wait`` for its rate-limit
    slot (None: as long as the budget needs), and a chunk of a bulk send at
    least its action's longest window plus its block (a bulk job waits out a
    full window rather than fail its chunks), except on a view made with
    `with_max_wait`, whose bound holds for every call. A slot known to free later fails
    at once with ``SlotTimeout``; a 416 whose block outlasts the bound (or the
    retry policy's ``max_block_wait``) is not retried.
    """

    def __init__(
        self,
        wire: Wire,
        *,
        hosts: Hosts,
        clock: ServerClock,
        app_key: str,
        rate_limits: RateLimits | None,
        limiter: Limiter,
        retry: RetryPolicy,
        hold: float,
        max_connections: int,
        pool_timeout: float | None,
        max_wait: float | None = None,
    ) -> None:
        self._wire = wire
        self.hosts = hosts
        self._clock = clock
        self._app_key = app_key
        self._limiter = limiter
        self._tallies: dict[str, _Tally] = {}
        self._block_logged_until: dict[str, float] = {}
        self.rate_limits = rate_limits
        self.retry = retry
        self.hold = hold
        self._connections = FifoSemaphore(max_connections)
        self._pool_timeout = math.inf if pool_timeout is None else pool_timeout
        self._deadlines = Deadlines()
        self._admission = Admission()
        # Shared with every view (with_max_wait): closing the client closes them all.
        self._lifecycle = _Lifecycle()
        self.max_wait = max_wait
        # A client's own bulk chunks wait out a window; a fail-fast view's do not.
        self.bulk_waits_a_window = True

    def with_max_wait(self, max_wait: float | None) -> Pipeline:
        """A view on this pipeline whose calls, bulk chunks included, wait at most
        ``max_wait`` for a slot.

        It shares the connection pool, the limiter, the statistics and the
        lifecycle; its settings start as this pipeline's.
        """
        view = copy.copy(self)
        view.max_wait = max_wait
        view.bulk_waits_a_window = False
        return view

    def close(self) -> None:
        """Refuse every further attempt, and end the waits of calls queued for a slot."""
        self._lifecycle.closed = True
        for waiting in self._lifecycle.waiting:
            waiting.cancel()
        self._deadlines.close()

    @property
    def app_key(self) -> str:
        """The app key every call is signed for (the budgets' keys start with it)."""
        return self._app_key

    @property
    def limiter(self) -> Limiter:
        """Where the rate limits' state lives."""
        return self._limiter

    def stats(self) -> dict[str, LimiterStats]:
        """Return what the limiter did, per action (a snapshot)."""
        return {
            action: LimiterStats(**attrs.asdict(tally)) for action, tally in self._tallies.items()
        }

    def _count(self, action: str, limited: bool, waited: float | None, rate_limited: bool) -> None:
        tally = self._tallies.get(action)
        if tally is None:
            tally = self._tallies[action] = _Tally()
        if waited is not None:
            tally.calls += 1
            tally.wait_seconds += waited
            # Without limits nobody waits; below a millisecond the slot was free:
            # the time is the lock's (or a busy machine's), not a wait.
            tally.waits += limited and waited > 0.001
        tally.rate_limited += rate_limited

    async def call(self, endpoint: Endpoint[T], arguments: Mapping[str, object]) -> T:
        """Write ``arguments`` as ``endpoint``'s form, check it, send it, return the result.

        Raises:
            InvalidRequest: An argument is of the wrong type or breaks a
                documented limit; nothing was sent.
            NimAPIError: The server answered an error code (after any safe retries).
            NimConnectionError: No answer came back (after any safe retries).
        """
        # A burst's checks and encoding spread over turns of the event loop.
        turn = self._admission.enter()
        if turn is not None:
            await turn
        fields = endpoint.form(arguments)
        validate(endpoint.action, fields)
        return await self._send(endpoint, fields)

    def estimate(
        self, endpoint: Endpoint[Answer], recipients: int, chunk_size: int
    ) -> BatchEstimate:
        """The calls a bulk send needs and the shortest time the current budget allows them."""
        limits = self._limits(endpoint.action)
        rates = [] if limits is None else [(rate.calls, rate.per) for rate in limits.rates]
        return estimate(recipients, chunk_size, rates)

    def batch_form(
        self, endpoint: Endpoint[Answer], arguments: Mapping[str, object], recipients: object
    ) -> Form:
        """Write and check a bulk send's form, all but ``toAccids``, once for the whole job.

        A collection of recipients is checked whole too, so that a bad accid
        at position 900,000 never leaves the job half done.

        Raises:
            InvalidRequest: An argument breaks its rule; nothing was sent.
        """
        if not_a_list(recipients):
            raise InvalidRequest(
                "toAccids",
                "an iterable or async iterable of accids (not a str, a mapping or a file)",
                f"{type(recipients).__name__} {safe_repr(recipients)}"[:80],
            )
        fields = endpoint.form(arguments)
        validate(endpoint.action, fields)
        if isinstance(recipients, Collection):
            check_recipients(recipients)
        return fields

    async def call_chunk(
        self,
        endpoint: Endpoint[Answer],
        form: Form,
        chunk: list[str],
        on_send: Callable[[], Awaitable[None]],
    ) -> Answer:
        """Send one chunk of a bulk send: ``form`` (checked by `batch_form`) to ``chunk``.

        Only the chunk's ``toAccids`` is checked here (its accids were checked
        one by one as they were read: `split_recipients`). ``on_send`` is awaited
        each time the request is about to go on the wire, so the caller can
        tell afterwards whether anything may have reached the server.

        Raises:
            InvalidRequest: The chunk breaks the ``toAccids`` rule; nothing was sent.
            NimAPIError: The server answered an error code (after any safe retries).
            NimConnectionError: No answer came back (after any safe retries).
        """
        fields: Form = {**form, "toAccids": json_text(chunk)}
        validate(endpoint.action, fields, only=("toAccids",))
        return await self._send(endpoint, fields, on_send, bulk=True)

    async def note_past_calls(self, action: str, ages: Sequence[float]) -> None:
        """Tell the limiter about calls of ``action`` an earlier process made.

        ``ages`` are the seconds since each was answered. A limiter that keeps
        its budget in memory then counts them in its windows; one that keeps
        it in a file or in Redis has them already, and a limiter without a
        ``note_past_calls`` method is left alone. Nothing happens with
        ``rate_limits=None``.
        """
        limits = self._limits(action)
        note = getattr(self._limiter, "note_past_calls", None)
        if limits is None or not callable(note):
            return
        noted = note(f"{self._app_key}:{canonical_action(action)}", limits, ages)
        if inspect.isawaitable(noted):
            await noted

    def _max_wait(self, action: str, bulk: bool) -> float | None:
        """The longest a call of ``action`` may wait for its slot, or for a block after a 416."""
        if self.max_wait is None or not bulk or not self.bulk_waits_a_window:
            return self.max_wait
        # A bulk job waits a whole window and a block rather than fail a chunk
        # (120 calls/min, block 60 s): at least the longest per plus the block.
        limits = self._limits(action) or RateLimits.default().for_action(action)
        return max(self.max_wait, max(rate.per for rate in limits.rates) + limits.block)

    async def _send(
        self,
        endpoint: Endpoint[T],
        form: Form,
        on_send: Callable[[], Awaitable[None]] | None = None,
        *,
        bulk: bool = False,
    ) -> T:
        uploads = (
            [value for value in form.values() if isinstance(value, Upload)]
            if endpoint.uploads
            else None
        )
        upload = uploads[0] if uploads else None
        text = {n: v for n, v in form.items() if isinstance(v, str)} if uploads else form
        fields = cast("dict[str, str]", text)  # a form's values are text or an Upload
        attempt = 0
        while True:
            attempt += 1
            max_wait = self._max_wait(endpoint.action, bulk)
            try:
                answer = await self._attempt(
                    endpoint.action, fields, upload, attempt, on_send, max_wait
                )
                return self._decode(endpoint, answer)
            except NimError as error:
                spent = upload is not None and not upload.repeatable
                if (
                    spent
                    or not self.retry.should_retry(
                        error, attempt=attempt, idempotent=endpoint.idempotent
                    )
                    or _block_outlasts(error, max_wait)
                ):
                    raise
                logger.info(
                    "action=%s attempt=%d failed (%s); retrying",
                    endpoint.action,
                    attempt,
                    type(error).__name__,
                )
                await self._before_retry(endpoint.action, error, attempt)

    async def _take_connection(self, action: str) -> None:
        """Wait for a turn at the connection pool: at most ``max_connections`` requests
        inside httpx (the caller tried `acquire_nowait` first).

        Two thousand calls queued inside httpx's pool make every release scan
        them all and can stall the event loop for seconds; queued here they
        wait in a FIFO that wakes one at a time, and a call cancelled while
        queued leaves it in O(1). The caller gives the turn back.
        """
        try:
            with anyio.fail_after(self._pool_timeout):
                await self._connections.acquire()
        except TimeoutError:
            raise NimTimeout(
                f"no pooled connection became free within {self._pool_timeout:g} s",
                action=action,
                may_have_reached_server=False,
            ) from None

    def _limits(self, action: str) -> ActionLimits | None:
        return None if self.rate_limits is None else self.rate_limits.for_action(action)

    @asynccontextmanager
    async def _waited_slot(
        self, action: str, limits: ActionLimits, max_wait: float | None
    ) -> AsyncIterator[None]:
        lifecycle, key = self._lifecycle, f"{self._app_key}:{action}"
        deadline = math.inf if max_wait is None else anyio.current_time() + max_wait
        async with AsyncExitStack() as slot:
            # The limiters of this package fail a slot beyond the deadline at
            # once (bounded_wait); one scope ends any other wait: at max_wait,
            # or when the client is closed.
            with bounded_wait(deadline) as bound, anyio.CancelScope(deadline=deadline) as waiting:
                lifecycle.waiting.add(waiting)
                try:
                    await slot.enter_async_context(self._limiter.slot(key, limits, hold=self.hold))
                except SlotTimeout as early:
                    raise _slot_timeout(action, max_wait, early.retry_after) from None
                finally:
                    lifecycle.waiting.discard(waiting)
            if waiting.cancelled_caught and not lifecycle.closed:
                # The limiter's last word on the slot's distance, else (a
                # limiter of the user's own) the wait itself, as a hint.
                seen = None if bound is None else bound.retry_after()
                raise _slot_timeout(action, max_wait, seen if seen is not None else max_wait or 0.0)
            yield

    @staticmethod
    def _decode(endpoint: Endpoint[T], answer: Answer) -> T:
        try:
            return endpoint.decode(answer)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            # Code 200 but not the documented shape ({"msgid": 1e400} included):
            # the call was carried out, so this is ambiguous, never a bare
            # KeyError that invites a resend.
            desc = f"code 200 with a malformed answer ({type(exc).__name__}: {exc})"
            raise MalformedAnswer(200, desc, endpoint.action) from exc

    async def _attempt(
        self,
        action: str,
        fields: Mapping[str, str],
        upload: Upload | None,
        attempt: int,
        on_send: Callable[[], Awaitable[None]] | None,
        max_wait: float | None,
    ) -> Answer:
        outcome: object = "?"
        started_ns = time.time_ns()
        started = time.perf_counter()
        sent_at: float | None = None
        limits = self._limits(action)
        try:
            slot = _NO_SLOT if limits is None else self._waited_slot(action, limits, max_wait)
            if self._lifecycle.closed:
                raise _closed(action)
            async with slot:
                if self._lifecycle.closed:
                    raise _closed(action)
                try:
                    self._connections.acquire_nowait()
                except anyio.WouldBlock:
                    await self._take_connection(action)
                try:
                    sent_at = time.perf_counter()
                    if on_send is not None:
                        await on_send()
                    answer = await exchange(
                        self._wire,
                        self.hosts,
                        self._clock,
                        action,
                        fields,
                        upload,
                        deadlines=self._deadlines,
                        deadline=self.hold,
                    )
                finally:
                    self._connections.release()
            outcome = 200
            return answer
        except RateLimited as error:
            outcome = 416
            # The server blocked the action: hold every waiter, whether or not
            # this call is retried (facts: the whole app is blocked for a while).
            error.retry_after = await self._record_block(action)
            raise
        except NimAPIError as error:
            outcome = error.code
            raise
        except NimError as error:
            outcome = type(error).__name__
            raise
        finally:
            waited = None if sent_at is None else sent_at - started
            self._count(action, limits is not None, waited, outcome == 416)
            telemetry().attempt(
                action=action,
                attempt=attempt,
                base=self.hosts.current,
                started_ns=started_ns,
                waited=waited,
                outcome=outcome,
            )
            if logger.isEnabledFor(logging.DEBUG):
                ended = time.perf_counter()
                logger.debug(
                    "action=%s attempt=%d outcome=%s elapsed_ms=%.1f waited_ms=%.1f",
                    action,
                    attempt,
                    outcome,
                    (ended - started) * 1000,
                    ((sent_at or ended) - started) * 1000,
                )

    async def _record_block(self, action: str) -> float:
        """Hold the action for its block in the limiter; return the block's seconds."""
        limits = self._limits(action)
        block = (limits or RateLimits.default().for_action(action)).block
        # Operators watch WARNING: a 416 means the app's budget was overrun somewhere.
        # One line per block: the other calls answered 416 within it are the same news.
        now = time.monotonic()
        if now >= self._block_logged_until.get(action, -math.inf):
            self._block_logged_until[action] = now + block
            logger.warning(
                "action=%s blocked by the server (code 416): no call for %g s", action, block
            )
        else:
            logger.debug("action=%s answered 416 within a block already logged", action)
        if limits is not None:
            await self._limiter.block(f"{self._app_key}:{action}", limits, limits.block)
        return block

    async def _before_retry(self, action: str, error: NimError, attempt: int) -> None:
        """Wait before the next attempt: out the server's block after a 416, else a backoff."""
        if isinstance(error, RateLimited):
            if self.rate_limits is None:
                # No limiter to wait in: wait out the documented block here
                # (no longer than max_wait and max_block_wait: see _send).
                await anyio.sleep(RateLimits.default().for_action(action).block)
            # Otherwise the limiter holds this retry, like every waiter, until the block ends.
            return
        await anyio.sleep(self.retry.backoff(attempt))


def _block_outlasts(error: NimError, max_wait: float | None) -> bool:
    """Whether ``error`` is a 416 whose block is longer than the call may wait."""
    if not isinstance(error, RateLimited) or error.retry_after is None or max_wait is None:
        return False
    return error.retry_after > max_wait


def _closed(action: str) -> ClientStateError:
    return ClientStateError(
        f"{action}: the client was closed before this call was sent; it was not sent"
    )


def _slot_timeout(action: str, max_wait: float | None, retry_after: float) -> SlotTimeout:
    bound = "" if max_wait is None else f" within max_wait={max_wait:g} s"
    return SlotTimeout(
        f"{action}: no rate-limit slot{bound} (the next frees in {retry_after:.3g} s); "
        "it was not sent",
        retry_after=retry_after,
    )
