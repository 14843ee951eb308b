"""Settings: checked at construction, and either read-only or in effect from the next call."""

from __future__ import annotations

import importlib.metadata
import inspect
import pickle
import traceback
from typing import Any

import httpx
import pytest

import nim_async as nim
from nim_async._endpoints import ENDPOINTS
from nim_async.testing import NimEmulator

from ._support import APP_KEY, APP_SECRET, make_client

pytestmark = pytest.mark.anyio

# Keywords of the batch methods that steer the job rather than fill a NIM parameter.
JOB_KEYWORDS = {"max_concurrency", "on_progress", "job"}


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("app_key", ""),
        ("app_key", None),
        ("app_secret", b"secret-as-bytes"),
        ("base_url", "ftp://nim.test/"),
        ("base_url", 42),
        ("rate_limits", {"msg/sendMsg": 100}),
        ("limiter", object()),
        ("retry", {"max_attempts": 3}),
        ("timeout", 0),
        ("timeout", float("inf")),
        ("timeout", "10"),
        ("max_connections", 0),
        ("max_connections", True),
        ("batch_size", 501),
        ("batch_size", 0),
        ("batch_size", 100.0),
        ("transport", object()),
        ("max_wait", 0),
        ("max_wait", float("inf")),
        ("max_wait", "10"),
    ],
)
def test_a_bad_constructor_argument_raises_configuration_error(keyword: str, value: Any) -> None:
    """ConfigurationError names the setting at construction, not at the first call."""
    arguments: dict[str, Any] = {"app_key": APP_KEY, "app_secret": APP_SECRET, keyword: value}
    with pytest.raises(nim.ConfigurationError, match=keyword) as caught:
        nim.NimClient(arguments.pop("app_key"), arguments.pop("app_secret"), **arguments)
    assert not isinstance(caught.value, nim.InvalidRequest)
    assert "secret-as-bytes" not in str(caught.value)


@pytest.mark.parametrize(
    ("secret", "got"),
    [
        (["x"], "got a list (value not shown)"),
        (b"secret-as-bytes", "got a bytes (value not shown); decode bytes first"),
        ("", "got an empty str"),
        (None, "got None"),
    ],
)
def test_a_bad_secret_is_named_by_its_type_never_its_value(secret: Any, got: str) -> None:
    """The error says what type the secret was, and never shows the value."""
    with pytest.raises(nim.ConfigurationError) as caught:
        nim.NimClient(APP_KEY, secret)
    message = str(caught.value)
    assert message.startswith(f"app_secret must be a non-empty str, {got}")
    assert "secret-as-bytes" not in message
    assert "'x'" not in message


async def test_a_retry_policy_set_later_takes_effect(emulator: NimEmulator) -> None:
    """client.retry = ... is used by the next call: one attempt instead of three."""
    async with make_client(emulator, retry=nim.RetryPolicy(backoff_base=0)) as client:
        client.retry = nim.RetryPolicy(max_attempts=1)
        emulator.fail_next("msg/recall", 500, count=2)
        with pytest.raises(nim.ServerError):
            await client.recall(1, 1, from_="alice", to="bob")
        assert len(emulator.calls) == 1
        assert client.retry == nim.RetryPolicy(max_attempts=1)


async def test_rate_limits_set_later_take_effect() -> None:
    """client.rate_limits = ... holds the next call until the window allows it."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with make_client(emulator, limiter=nim.LocalLimiter()) as client:
        await client.send_attach_msg("alice", "bob", "x")
        client.rate_limits = nim.RateLimits().with_action("sendAttachMsg", nim.Rate(1, 0.2))
        assert client.rate_limits.for_action("sendAttachMsg").rates == (nim.Rate(1, 0.2),)
        await client.send_attach_msg("alice", "bob", "x")
        await client.send_attach_msg("alice", "bob", "x")
    # One call per 0.2 s, counted from the answer: the third arrived at least 0.2 s later.
    second, third = emulator.calls[1].at, emulator.calls[2].at
    assert third - second >= 0.2


async def test_a_batch_size_set_later_takes_effect(emulator: NimEmulator) -> None:
    """client.batch_size = 2 sends five recipients in three calls."""
    async with make_client(emulator) as client:
        client.batch_size = 2
        result = await client.send_batch_attach_msg("alice", list("abcde"), "x")
    assert result.calls == 3
    assert len(emulator.calls) == 3


async def test_a_timeout_set_later_takes_effect(emulator: NimEmulator) -> None:
    """client.timeout = 0.05 makes a slow answer time out."""
    emulator.set_latency(1.0, "msg/sendAttachMsg")
    with emulator.serve() as base_url:
        async with make_client(base_url=base_url) as client:
            client.timeout = 0.05
            assert client.timeout == httpx.Timeout(0.05)
            with pytest.raises(nim.NimTimeout):
                await client.send_attach_msg("alice", "bob", "x")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("retry", None),
        ("rate_limits", "100/s"),
        ("batch_size", 501),
        ("timeout", -1),
        ("max_wait", -1),
    ],
)
def test_a_bad_setting_raises_and_keeps_the_old_value(setting: str, value: Any) -> None:
    """A refused setting leaves the client as it was."""
    client = make_client()
    before = getattr(client, setting)
    with pytest.raises(nim.ConfigurationError, match=setting):
        setattr(client, setting, value)
    assert getattr(client, setting) == before


@pytest.mark.parametrize("setting", ["app_key", "base_url", "limiter"])
def test_identity_settings_are_read_only(setting: str) -> None:
    """app_key, base_url and limiter cannot be changed under a live pool."""
    client = make_client()
    with pytest.raises(AttributeError):
        setattr(client, setting, getattr(client, setting))


async def test_a_batch_job_used_twice_is_refused_before_anything_is_sent(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """A second send with the same BatchJob would overwrite its record."""
    job = nim.BatchJob()
    await client.send_batch_attach_msg("alice", ["a", "b"], "x", job=job)
    with pytest.raises(nim.ConfigurationError, match="BatchJob"):
        await client.send_batch_attach_msg("alice", ["c"], "x", job=job)
    assert len(emulator.calls) == 1
    assert job.result().accepted == 2


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("max_concurrency", 0), ("max_concurrency", 2.5), ("on_progress", 3), ("job", "job-1")],
)
async def test_bad_job_settings_raise_configuration_error(
    client: nim.NimClient, emulator: NimEmulator, keyword: str, value: Any
) -> None:
    """max_concurrency, on_progress and job are settings, not NIM parameters."""
    with pytest.raises(nim.ConfigurationError, match=keyword):
        await client.send_batch_attach_msg("alice", ["a"], "x", **{keyword: value})
    assert emulator.calls == []


def test_public_exceptions_show_the_public_module() -> None:
    """Tracebacks read nim_async.ParameterError, not nim_async._errors.ParameterError."""
    error = nim.ParameterError(414, "bad", "msg/sendMsg")
    assert "".join(traceback.format_exception_only(error)).startswith("nim_async.ParameterError")
    for name in nim.__all__:
        exported = getattr(nim, name)
        if isinstance(exported, type) and issubclass(exported, BaseException):
            assert exported.__module__ == "nim_async", name


def test_batch_failed_round_trips_through_pickle() -> None:
    """BatchFailed carries its result across processes (Celery, multiprocessing)."""
    failed = nim.FailedChunk(("a",), nim.ParameterError(414, "bad", "msg/sendBatchMsg"))
    error = nim.BatchFailed(nim.BatchResult(failed=[failed], calls=1))
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error)
    assert again.result.failed[0].accids == ("a",)


def test_the_version_comes_from_the_package_metadata() -> None:
    """__version__ is the installed distribution's version, not a second copy."""
    assert nim.__version__ == importlib.metadata.version("nim-async")


async def test_every_request_names_the_client_and_its_version(
    client: nim.NimClient, emulator: NimEmulator
) -> None:
    """User-Agent: nim-async/<version>, as the official SDKs identify themselves."""
    await client.send_attach_msg("alice", "bob", "x")
    assert emulator.calls[0].headers["user-agent"] == f"nim-async/{nim.__version__}"


@pytest.mark.parametrize("method", sorted(ENDPOINTS))
def test_every_keyword_of_every_endpoint_has_its_place_in_the_spec(method: str) -> None:
    """A keyword the spec did not map would be dropped silently; each is mapped once."""
    spec = ENDPOINTS[method]
    keywords = set(inspect.signature(getattr(nim.NimClient, method)).parameters) - {"self"}
    mapped = [param.keyword for param in spec.params]
    assert len(mapped) == len(set(mapped))
    extra = {spec.recipients} | JOB_KEYWORDS if spec.recipients else set()
    if method == "send_batch_attach_msg":
        extra.add("batch_size")  # chunking, per call (up to 5000 for this action)
    also = {keyword for param in spec.params for keyword in param.also}
    assert keywords == set(mapped) | also | extra


@pytest.mark.parametrize(
    ("build", "setting"),
    [
        (lambda: nim.Rate(0, 1), "calls"),
        (lambda: nim.Rate(10, float("nan")), "per"),
        (lambda: nim.Rate(10, "1"), "per"),
        (lambda: nim.ActionLimits((nim.Rate(1, 1),), block=-1), "block"),
        (lambda: nim.RateLimits.default().scaled(0), "factor"),
        (lambda: nim.RetryPolicy(max_attempts=0), "max_attempts"),
        (lambda: nim.RetryPolicy(backoff_base=-0.1), "backoff_base"),
        (lambda: nim.RetryPolicy(jitter="no"), "jitter"),
        (lambda: nim.RetryPolicy(max_block_wait=-1), "max_block_wait"),
        (lambda: nim.LocalLimiter(poll_interval=0), "poll_interval"),
        (lambda: nim.LocalLimiter(path=""), "path"),
        (lambda: nim.LocalLimiter(path=":memory:"), "path"),
    ],
)
def test_every_settings_object_refuses_with_configuration_error(build: Any, setting: str) -> None:
    """Rates, retry policies and limiters refuse bad values the same way the client does."""
    with pytest.raises(nim.ConfigurationError, match=setting):
        build()


def _one_of_each_exception() -> list[nim.NimError]:
    failed = nim.FailedChunk(("a",), nim.NotFound(404, "no", "msg/sendBatchMsg"))
    return [
        nim.NimError("base"),
        nim.ConfigurationError("batch_size must be ..."),
        nim.InvalidRequest("to", "a str", "list ['a']"),
        nim.JournalMismatch("another job"),
        nim.JournalUnavailable("disk full"),
        nim.JournalLocked("another runner holds the journal"),
        nim.ClientStateError("closed"),
        nim.LimiterUnavailable("redis is down"),
        nim.SlotTimeout("no slot within 2 s", retry_after=2.0),
        nim.CallbackRejected("checksum", "CheckSum does not match"),
        nim.ParameterError(414, "bad", "msg/sendMsg"),
        nim.ClockSkew(414, "CurTime is off", "msg/sendMsg"),
        nim.PermissionDenied(403, "no", "msg/sendMsg"),
        nim.NotFound(404, "no", "msg/sendMsg"),
        nim.RateLimited(416, "blocked", "msg/sendMsg", retry_after=10.0),
        nim.DuplicateRequest(431, "again", "msg/sendMsg"),
        nim.RecallExpired(508, "late", "msg/recall"),
        nim.NimAPIError(999, "pack error", "msg/sendMsg"),
        nim.ServerError(503, "busy", "msg/sendMsg", status=503),
        nim.MalformedAnswer(200, "not JSON", "msg/sendMsg"),
        nim.NimConnectionError("reset", action="msg/sendMsg", may_have_reached_server=True),
        nim.NimTimeout("slow", action="msg/sendMsg", may_have_reached_server=False),
        nim.ChunkCancelled("cut", action="msg/sendBatchMsg", may_have_reached_server=False),
        nim.BatchFailed(nim.BatchResult(failed=[failed], calls=1)),
    ]


@pytest.mark.parametrize("error", _one_of_each_exception(), ids=lambda e: type(e).__name__)
def test_every_exception_round_trips_through_pickle(error: nim.NimError) -> None:
    """Celery and multiprocessing hand exceptions between processes by pickling them."""
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert vars(again).keys() == vars(error).keys()


def test_the_pickle_test_covers_every_public_exception() -> None:
    """A new exception class must join the round-trip test above."""
    exported = {
        getattr(nim, name)
        for name in nim.__all__
        if isinstance(getattr(nim, name), type) and issubclass(getattr(nim, name), BaseException)
    }
    assert {type(error) for error in _one_of_each_exception()} == exported
