"""nim_async: an asyncio client for the NetEase IM (CommsEase) server API's message functions."""

from __future__ import annotations

from importlib.metadata import version as _metadata_version

from ._base import DEFAULT_MAX_WAIT
from ._callbacks import (
    DEFAULT_CALLBACK_MAX_AGE,
    CallbackRejected,
    callback_dependency,
    callback_id,
    verify_callback,
)
from ._client import CHINA_URL, OVERSEAS_URL, YUNXIN_CN_URLS, YUNXIN_SG_URLS, NimClient
from ._errors import (
    BatchFailed,
    ChunkCancelled,
    ClientStateError,
    ClockSkew,
    ConfigurationError,
    DuplicateRequest,
    InvalidRequest,
    JournalLocked,
    JournalMismatch,
    JournalUnavailable,
    LimiterUnavailable,
    MalformedAnswer,
    NimAPIError,
    NimConnectionError,
    NimError,
    NimTimeout,
    NotFound,
    ParameterError,
    PermissionDenied,
    RateLimited,
    RecallExpired,
    ServerError,
    SlotTimeout,
)
from ._journal import Journal
from ._journal_redis import RedisJournal
from ._journal_sqlite import SqliteJournal
from ._limits import ActionLimits, Limiter, LimiterStats, LocalLimiter, Rate, RateLimits
from ._models import (
    Body,
    Broadcast,
    Custom,
    File,
    HistoryMessage,
    Image,
    Location,
    MessageOption,
    Push,
    SendResult,
    SessionHistory,
    Text,
    Tip,
    Video,
    Voice,
)
from ._redis import RedisLimiter
from ._results import BatchEstimate, BatchJob, BatchResult, FailedChunk, Progress
from ._retry import RetryPolicy

__all__ = [
    "CHINA_URL",
    "DEFAULT_CALLBACK_MAX_AGE",
    "DEFAULT_MAX_WAIT",
    "OVERSEAS_URL",
    "YUNXIN_CN_URLS",
    "YUNXIN_SG_URLS",
    "ActionLimits",
    "BatchEstimate",
    "BatchFailed",
    "BatchJob",
    "BatchResult",
    "Body",
    "Broadcast",
    "CallbackRejected",
    "ChunkCancelled",
    "ClientStateError",
    "ClockSkew",
    "ConfigurationError",
    "Custom",
    "DuplicateRequest",
    "FailedChunk",
    "File",
    "HistoryMessage",
    "Image",
    "InvalidRequest",
    "Journal",
    "JournalLocked",
    "JournalMismatch",
    "JournalUnavailable",
    "Limiter",
    "LimiterStats",
    "LimiterUnavailable",
    "LocalLimiter",
    "Location",
    "MalformedAnswer",
    "MessageOption",
    "NimAPIError",
    "NimClient",
    "NimConnectionError",
    "NimError",
    "NimTimeout",
    "NotFound",
    "ParameterError",
    "PermissionDenied",
    "Progress",
    "Push",
    "Rate",
    "RateLimited",
    "RateLimits",
    "RecallExpired",
    "RedisJournal",
    "RedisLimiter",
    "RetryPolicy",
    "SendResult",
    "ServerError",
    "SessionHistory",
    "SlotTimeout",
    "SqliteJournal",
    "Text",
    "Tip",
    "Video",
    "Voice",
    "callback_dependency",
    "callback_id",
    "verify_callback",
]

__version__ = _metadata_version("nim-async")
