"""nim_async: an asyncio client for the NetEase IM (CommsEase) server API's message functions."""

from __future__ import annotations

from importlib.metadata import version as _metadata_version

from ._client import CHINA_URL, OVERSEAS_URL, YUNXIN_CN_URLS, YUNXIN_SG_URLS, NimClient
from ._errors import (
    BatchFailed,
    ChunkCancelled,
    ClientStateError,
    ClockSkew,
    ConfigurationError,
    DuplicateRequest,
    InvalidRequest,
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
)
from ._journal import Journal, RedisJournal, SqliteJournal
from ._limits import ActionLimits, Limiter, LimiterStats, LocalLimiter, Rate, RateLimits
from ._models import (
    Body,
    Broadcast,
    Custom,
    File,
    Image,
    Location,
    MessageOption,
    Push,
    SendResult,
    Text,
    Tip,
    Video,
    Voice,
)
from ._redis import RedisLimiter
from ._results import BatchJob, BatchResult, FailedChunk, Progress
from ._retry import RetryPolicy

__all__ = [
    "CHINA_URL",
    "OVERSEAS_URL",
    "YUNXIN_CN_URLS",
    "YUNXIN_SG_URLS",
    "ActionLimits",
    "BatchFailed",
    "BatchJob",
    "BatchResult",
    "Body",
    "Broadcast",
    "ChunkCancelled",
    "ClientStateError",
    "ClockSkew",
    "ConfigurationError",
    "Custom",
    "DuplicateRequest",
    "FailedChunk",
    "File",
    "Image",
    "InvalidRequest",
    "Journal",
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
    "SqliteJournal",
    "Text",
    "Tip",
    "Video",
    "Voice",
]

__version__ = _metadata_version("nim-async")
