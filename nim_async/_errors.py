"""The exceptions nim_async raises, and the map from NIM codes to them.

The tree::

    NimError
    ├── ConfigurationError(NimError, ValueError) a bad setting: a constructor argument,
    │   │                                       batch_size, max_concurrency, a reused BatchJob
    │   └── JournalMismatch                     a journal made for another job
    ├── InvalidRequest(NimError, ValueError)   bad input, raised before anything is sent
    ├── NimAPIError                            the server answered a code other than 200
    │   ├── ParameterError       414
    │   │   └── ClockSkew        414 because the local clock is 5 minutes or more off
    │   ├── PermissionDenied     403
    │   ├── NotFound             404
    │   ├── RateLimited          416
    │   ├── DuplicateRequest     431
    │   ├── RecallExpired        508
    │   └── ServerError          500, 503, 514, and any HTTP 5xx answer
    │       └── MalformedAnswer  an answer that cannot be read, or contradicts its request
    ├── NimConnectionError                     the exchange itself failed
    │   ├── NimTimeout
    │   └── ChunkCancelled                     a bulk job was cancelled with the chunk pending
    ├── LimiterUnavailable                     the shared rate limiter's store is down
    ├── SlotTimeout                            no rate-limit slot within max_wait; not sent
    ├── JournalUnavailable                     a bulk job's journal cannot be read or written
    │   └── JournalLocked                      another runner holds the journal
    ├── ClientStateError(NimError, RuntimeError) the client is closed, or used from another
    │                                           event loop; nothing was sent
    └── BatchFailed                            raise_for_failures(): chunks of a bulk send failed

No exception here ever holds the app secret: they are built from the action name,
the server's answer and the request's form, never from the signed headers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._results import BatchResult

__all__ = [
    "BatchFailed",
    "ChunkCancelled",
    "ClientStateError",
    "ClockSkew",
    "ConfigurationError",
    "DuplicateRequest",
    "InvalidRequest",
    "JournalLocked",
    "JournalMismatch",
    "JournalUnavailable",
    "LimiterUnavailable",
    "MalformedAnswer",
    "NimAPIError",
    "NimConnectionError",
    "NimError",
    "NimTimeout",
    "NotFound",
    "ParameterError",
    "PermissionDenied",
    "RateLimited",
    "RecallExpired",
    "ServerError",
    "SlotTimeout",
]


class NimError(Exception):
    """Base class of every exception nim_async raises."""


class ConfigurationError(NimError, ValueError):
    """Raised when a setting is out of range or of the wrong type: nothing was sent.

    It names a setting of this library (a ``NimClient`` argument, ``batch_size``,
    ``max_concurrency``), never a NIM parameter: those raise ``InvalidRequest``.
    """


class ClientStateError(NimError, RuntimeError):
    """Raised when a call cannot be made in the client's state; nothing was sent.

    The client is closed (or was closed while the call waited for its
    rate-limit slot), or it is used from an event loop other than the one
    that first used it, where its pooled connections cannot work.
    """


class JournalMismatch(ConfigurationError):
    """Raised when a journal was made for another message or other recipients; nothing was sent."""


class JournalUnavailable(NimError):
    """Raised when a bulk job's journal cannot be read or written, or is damaged.

    A chunk is sent only after the journal recorded it, so nothing goes out
    unrecorded: the job stops with the chunks in flight recorded as usual. A
    journal that cannot be read whole is refused before anything is sent.
    """


class JournalLocked(JournalUnavailable):
    """Raised when another runner holds the journal.

    One runner at a time owns a journal: an SQLite journal through an OS lock
    that ends with its process, a Redis journal through a lease that its
    runner renews. Raised when the job starts, this runner sent nothing. A
    runner that loses its lease mid-job stops with this error as
    ``BatchResult.stopped``: what it sent until then is in its result, and
    it sends nothing more.
    """


class InvalidRequest(NimError, ValueError):
    """Raised before anything is sent when a parameter breaks a documented limit.

    Attributes:
        parameter: The NIM parameter name (``pushcontent``, ``toAccids``, ...).
        limit: The rule it broke, in words (``at most 500 characters``).
        actual: What was given, measured the way the limit is (a length, a count, the value).
    """

    def __init__(self, parameter: str, limit: str, actual: object = None) -> None:
        self.parameter = parameter
        self.limit = limit
        self.actual = actual
        message = f"{parameter}: must be {limit}"
        if actual is not None:
            message += f" (got {actual})"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[InvalidRequest], tuple[str, str, object]]:
        return type(self), (self.parameter, self.limit, self.actual)


# facts, "Status codes": answers that refuse the call before anything is done.
# Anything else (500, 503, 408 timeout, 417/431 duplicates of an earlier call
# that may have been carried out, a code nobody documents) may follow an action.
REFUSAL_CODES = frozenset(
    {201, 301, 302, 315, 403, 404, 405, 406, 414, 416, 419, 422, 423, 508, 509}
    | {801, 802, 803, 804, 805, 811, 812, 7101}
)


class NimAPIError(NimError):
    """Raised when the server answers a code other than 200.

    Attributes:
        code: The JSON ``code`` of the answer (or the HTTP status for a non-JSON answer).
        desc: The server's ``desc``, or ``""`` when it gave none.
        action: The NIM action, such as ``"msg/sendMsg"``.
    """

    def __init__(self, code: int, desc: str, action: str) -> None:
        self.code = code
        self.desc = desc
        self.action = action
        super().__init__(f"{action}: code {code}: {desc}" if desc else f"{action}: code {code}")

    @property
    def may_have_been_carried_out(self) -> bool:
        """False only for codes documented as refusing the call before acting (403, 414, ...).

        An HTTP 5xx, a timeout code, a duplicate code or an unknown code may
        follow a call the server carried out: resending it may deliver twice.
        """
        return self.code not in REFUSAL_CODES

    def __reduce__(self) -> tuple[type[NimAPIError], tuple[int, str, str]]:
        return type(self), (self.code, self.desc, self.action)


class ParameterError(NimAPIError):
    """Raised on code 414: the server rejected a parameter (or the CheckSum)."""


class ClockSkew(ParameterError):
    """Raised on a 414 whose answer showed the local clock 5 minutes or more off the server's.

    The server refuses a CheckSum whose ``CurTime`` is that far off (NetEase's
    接口概述, "CurTime"). The client signs with the server's time from then
    on, and retries the call once when the retry policy has attempts left.
    """


class PermissionDenied(NimAPIError):
    """Raised on code 403: illegal operation or no permission."""


class NotFound(NimAPIError):
    """Raised on code 404: an account, team or message does not exist."""


class RateLimited(NimAPIError):
    """Raised on code 416 once retries are spent: the server blocked the action.

    Attributes:
        retry_after: Seconds until the server's block ends, as far as the
            client knows it (the action's documented block), or None.
    """

    def __init__(self, code: int, desc: str, action: str, retry_after: float | None = None) -> None:
        super().__init__(code, desc, action)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[type[RateLimited], tuple[int, str, str, float | None]]:  # type: ignore[override]
        return type(self), (self.code, self.desc, self.action, self.retry_after)


class DuplicateRequest(NimAPIError):
    """Raised on code 431: the server saw the same HTTP request twice."""


class RecallExpired(NimAPIError):
    """Raised on code 508: the message is older than the recall window."""


class ServerError(NimAPIError):
    """Raised on codes 500, 503 and 514, and on an HTTP 5xx answer without a JSON body.

    Attributes:
        status: The HTTP status of the answer (200 when the error came as a JSON code).
    """

    def __init__(self, code: int, desc: str, action: str, status: int = 200) -> None:
        super().__init__(code, desc, action)
        self.status = status

    def __reduce__(self) -> tuple[type[ServerError], tuple[int, str, str, int]]:  # type: ignore[override]
        return type(self), (self.code, self.desc, self.action, self.status)

    @property
    def may_have_been_carried_out(self) -> bool:
        """Always True: the server may have acted before failing."""
        return True


class MalformedAnswer(ServerError):
    """Raised when an answer cannot be read (broken encoding, not JSON, too large, a
    code that is not a number) or contradicts its request; the call may have been carried out.

    ``code`` is the HTTP status of the answer.
    """


class NimConnectionError(NimError):
    """Raised when the HTTP exchange failed: no answer came back.

    Attributes:
        message: What went wrong, without the action's name (``str(error)`` has both).
        action: The NIM action that was being called.
        may_have_reached_server: False only when the request surely never left
            (the connection was never made, or no pooled connection was free);
            True when the server may have received and carried it out.
    """

    def __init__(self, message: str, *, action: str, may_have_reached_server: bool) -> None:
        super().__init__(f"{action}: {message}")
        self.message = message
        self.action = action
        self.may_have_reached_server = may_have_reached_server

    def __reduce__(self) -> tuple[object, ...]:
        keywords = {"action": self.action, "may_have_reached_server": self.may_have_reached_server}
        return _rebuild, (type(self), self.message, keywords)


class NimTimeout(NimConnectionError):
    """Raised when connecting, sending or waiting for the answer timed out."""


class ChunkCancelled(NimConnectionError):
    """Recorded (in a ``FailedChunk``, never raised) for a chunk cut off by cancelling its job.

    ``may_have_reached_server`` is True when its request had gone out.
    """


class SlotTimeout(NimError):
    """Raised when a call would wait longer than ``max_wait`` for its rate-limit slot.

    Nothing was sent. Set with ``client.with_options(max_wait=...)`` so that a
    request handler fails fast (answer 429 with ``Retry-After``) instead of
    waiting out the budget.

    Attributes:
        message: What went wrong, as ``str(error)``.
        retry_after: Seconds after which a retry may find a slot (a hint).
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        return _rebuild, (type(self), self.message, {"retry_after": self.retry_after})


class LimiterUnavailable(NimError):
    """Raised when the shared limiter's store (Redis) cannot be reached; nothing was sent.

    Sending without the shared budget could get the whole app blocked, so the
    call fails instead of going out unlimited.
    """


class BatchFailed(NimError):
    """Raised by ``BatchResult.raise_for_failures()`` when chunks failed.

    Attributes:
        result: The whole result, failed chunks included.
    """

    def __init__(self, result: BatchResult) -> None:
        self.result = result
        first = result.failed[0].error if result.failed else None
        super().__init__(
            f"{len(result.failed)} of {result.calls} batch calls failed "
            f"({result.failed_count} recipients); first error: {first}"
        )

    def __reduce__(self) -> tuple[type[BatchFailed], tuple[BatchResult]]:
        return type(self), (self.result,)


def _rebuild(cls: type[NimError], message: str, keywords: dict[str, object]) -> NimError:
    """Unpickle an exception whose constructor takes keywords."""
    return cls(message, **keywords)


_CODE_TO_ERROR: dict[int, type[NimAPIError]] = {
    403: PermissionDenied,
    404: NotFound,
    414: ParameterError,
    416: RateLimited,
    431: DuplicateRequest,
    500: ServerError,
    503: ServerError,
    508: RecallExpired,
    514: ServerError,
}


def error_for_code(code: int, desc: str, action: str) -> NimAPIError:
    """Return the exception for a NIM answer ``code`` (``NimAPIError`` for unmapped codes)."""
    return _CODE_TO_ERROR.get(code, NimAPIError)(code, desc, action)


# Tracebacks and reprs show the public path (nim_async.ParameterError), as httpx does.
for _name in __all__:
    globals()[_name].__module__ = "nim_async"
