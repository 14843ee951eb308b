"""RetryPolicy: the decision table and the backoff."""

from __future__ import annotations

import pickle

import pytest

import nim_async as nim

AMBIGUOUS = nim.NimTimeout("read", action="a", may_have_reached_server=True)
NEVER_SENT = nim.NimConnectionError("refused", action="a", may_have_reached_server=False)


@pytest.mark.parametrize(
    ("error", "idempotent", "opt_in", "retried"),
    [
        (NEVER_SENT, False, False, True),
        (nim.RateLimited(416, "", "a"), False, False, True),
        (AMBIGUOUS, False, False, False),
        (AMBIGUOUS, True, False, True),
        (AMBIGUOUS, False, True, True),
        (nim.ServerError(500, "", "a"), False, False, False),
        (nim.ServerError(500, "", "a"), True, False, True),
        (nim.ServerError(502, "", "a", status=502), False, True, True),
        (nim.ParameterError(414, "", "a"), True, True, False),
        (nim.DuplicateRequest(431, "", "a"), True, True, False),
        (nim.InvalidRequest("to", "x"), True, True, False),
    ],
)
def test_what_is_retried(
    error: nim.NimError, idempotent: bool, opt_in: bool, retried: bool
) -> None:
    """Only what cannot have been carried out is retried, unless idempotent or opted in."""
    policy = nim.RetryPolicy(retry_ambiguous=opt_in)
    assert policy.should_retry(error, attempt=1, idempotent=idempotent) is retried


@pytest.mark.parametrize(
    ("block", "bound", "retried"),
    [(None, 60.0, True), (10.0, 60.0, True), (60.0, 60.0, True), (86400.0, 60.0, False)],
)
def test_a_416_is_retried_only_when_its_block_is_within_max_block_wait(
    block: float | None, bound: float, retried: bool
) -> None:
    """A block longer than max_block_wait (job/nos/del's day) is not slept through; an unknown
    block is retried as before."""
    error = nim.RateLimited(416, "blocked", "job/nos/del", retry_after=block)
    policy = nim.RetryPolicy(max_block_wait=bound)
    assert policy.should_retry(error, attempt=1, idempotent=False) is retried


def test_the_default_block_bound_covers_the_documented_minute() -> None:
    """60 s: the 10 s and 60 s blocks of the message actions, not a day."""
    assert nim.RetryPolicy().max_block_wait == 60.0


@pytest.mark.parametrize("bound", [-1, float("inf"), float("nan"), "60", True])
def test_a_bad_max_block_wait_is_refused(bound: object) -> None:
    """A finite number of seconds, at least 0."""
    with pytest.raises(nim.ConfigurationError, match="max_block_wait"):
        nim.RetryPolicy(max_block_wait=bound)  # type: ignore[arg-type]


def test_no_retry_once_attempts_are_spent() -> None:
    """max_attempts counts the first attempt."""
    policy = nim.RetryPolicy(max_attempts=2)
    assert policy.should_retry(NEVER_SENT, attempt=1, idempotent=False)
    assert not policy.should_retry(NEVER_SENT, attempt=2, idempotent=False)


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    """base, 2×base, 4×base, ... never above the cap."""
    policy = nim.RetryPolicy(backoff_base=0.5, backoff_cap=1.5, jitter=False)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]


def test_jittered_backoff_stays_between_zero_and_the_ceiling() -> None:
    """Full jitter: uniform in [0, ceiling]."""
    policy = nim.RetryPolicy(backoff_base=1, backoff_cap=2)
    assert all(0 <= policy.backoff(3) <= 2 for _ in range(200))


def test_max_attempts_below_one_is_refused() -> None:
    """A policy that would never send is a mistake."""
    with pytest.raises(ValueError, match="max_attempts"):
        nim.RetryPolicy(max_attempts=0)


@pytest.mark.parametrize(
    "error",
    [
        nim.InvalidRequest("toAccids", "at most 500", "501 accids"),
        nim.ParameterError(414, "check msgType", "msg/sendAttachMsg"),
        nim.ServerError(502, "bad gateway", "msg/sendMsg", status=502),
        nim.NimConnectionError("refused", action="msg/recall", may_have_reached_server=False),
        nim.NimTimeout("read", action="msg/sendMsg", may_have_reached_server=True),
        nim.ChunkCancelled("stopped", action="msg/sendBatchMsg", may_have_reached_server=False),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_survive_pickling_with_every_field(error: nim.NimError) -> None:
    """Process pools and task queues pickle exceptions: nothing may be lost on the way."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
