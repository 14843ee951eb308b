"""Any value for any keyword of any endpoint: sent and accepted, or refused before the wire.

The property, for each public endpoint method and each of its keywords, the
other arguments valid: with an arbitrary value for that keyword the call either
goes out and the emulator answers 200 (for a bulk send: no failed chunk, or
failed chunks that carry ``InvalidRequest`` and sent nothing), or it raises
``InvalidRequest`` naming a parameter, with nothing sent and the limiter
untouched. A 414 from the emulator means the client let through a value it
should have refused; any other exception is a crash on bad input.

One documented exception to "InvalidRequest or nothing": ``max_concurrency``,
``on_progress`` and ``job`` are this library's settings, so they raise
``ConfigurationError`` (README, "Errors"). It must still leave the wire and the
limiter untouched.
"""

from __future__ import annotations

import datetime as dt
import inspect
import io
import json
import operator
from collections.abc import AsyncIterator, Callable
from pathlib import PurePosixPath
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import past_nos_range

APP_KEY = "key"
APP_SECRET = "secret"

# Two hundred examples per run: left to the full session (noxfile.py).
pytestmark = pytest.mark.slow

METHODS = (
    "send_msg",
    "send_batch_msg",
    "send_attach_msg",
    "send_batch_attach_msg",
    "upload",
    "file_upload",
    "clean_nos_files",
    "recall",
    "broadcast",
    "delete_msg_one_way",
    "delete_roam_session",
    "mark_read_msg",
    "mark_read_team_msg",
    "delete_msg",
    "delete_broadcast",
    "query_session_msg",
)

# Coroutine methods that are no NIM endpoint: aclose, and reconcile, which takes a
# BatchJob and asks query_session_msg (walked here) on its behalf.
NOT_ENDPOINTS = frozenset({"aclose", "reconcile"})

# This library's own settings: a wrong value is a ConfigurationError (README, "Errors").
SETTINGS = frozenset({"max_concurrency", "on_progress", "job", "batch_size"})

# Examples per (method, keyword): about a hundred pairs, so the module runs in seconds.
MAX_EXAMPLES = 25


def valid_arguments(method: str) -> dict[str, Any]:
    """Arguments every endpoint accepts (the emulator answers 200), read now.

    The NOS range is read at each call: a run may cross midnight in China.
    """
    start, end = past_nos_range()
    table: dict[str, dict[str, Any]] = {
        "send_msg": {"from_": "alice", "to": "bob", "body": nim.Text("hi")},
        "send_batch_msg": {"from_": "alice", "to": ["bob"], "body": nim.Text("hi")},
        "send_attach_msg": {"from_": "alice", "to": "bob", "attach": "x"},
        "send_batch_attach_msg": {"from_": "alice", "to": ["bob"], "attach": "x"},
        "upload": {"content": b"x"},
        "file_upload": {"content": b"x"},
        "clean_nos_files": {"start": start, "end": end},
        "recall": {"msgid": 1, "timetag": 1, "from_": "alice", "to": "bob"},
        "broadcast": {"body": "hi"},
        "delete_msg_one_way": {"msgid": 1, "timetag": 1, "from_": "alice", "to": "bob"},
        "delete_roam_session": {"from_": "alice", "to": "bob"},
        "mark_read_msg": {"from_": "bob", "to": "alice", "msgid_client": "c-1"},
        "mark_read_team_msg": {"accid": "bob", "tid": 1, "msgids": [1]},
        "delete_msg": {"msgid": 1, "timetag": 1, "from_": "alice", "to": "bob"},
        "delete_broadcast": {"broadcast_id": 1},
        "query_session_msg": {"from_": "alice", "to": "bob", "begin": 1, "end": 2},
    }
    return table[method]


def keywords(method: str) -> list[str]:
    """Every argument of the method, read from its signature so that none is forgotten."""
    signature = inspect.signature(getattr(nim.NimClient, method))
    return [name for name in signature.parameters if name != "self"]


CASES = [(method, keyword) for method in METHODS for keyword in keywords(method)]
CASE_IDS = [f"{method}-{keyword}" for method, keyword in CASES]


def show(value: object, limit: int = 120) -> str:
    """A short repr that never raises (an int past 4300 digits has no repr)."""
    try:
        text = repr(value)
    except Exception as error:
        text = f"<{type(value).__name__} whose repr raises {type(error).__name__}>"
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} characters)"


def closed_file() -> io.BytesIO:
    """A binary file object that was already closed."""
    stream = io.BytesIO(b"x")
    stream.close()
    return stream


def cyclic_list() -> list[object]:
    """A list that holds itself: no JSON for it."""
    items: list[object] = ["bob"]
    items.append(items)
    return items


def view(data: bytes) -> memoryview:
    """A memoryview of ``data``: bytes-like, but not bytes."""
    return memoryview(data)


def ten_to(digits: int) -> int:
    """10 to the power ``digits``."""
    power: int = 10**digits
    return power


async def stream(items: list[object]) -> AsyncIterator[object]:
    """An async iterable of ``items`` (bulk sends take them)."""
    for item in items:
        yield item


# --- values --------------------------------------------------------------------

# Lone surrogates included: half an emoji cannot be encoded as UTF-8.
CHARACTERS = st.characters(exclude_categories=())
HUGE_INT = 10**5000  # past sys.get_int_max_str_digits(): str() and repr() raise

texts = st.one_of(
    st.text(CHARACTERS, max_size=12),
    st.sampled_from(
        ["", " ", "alice", "bob", "0", "7", "-1", "12a", "true", "false", "maybe", "1", "ios"]
    ),
    st.sampled_from(["x" * 33, "bo\ud83d", "\udc00", "\x00", ".", "/", "９"]),
    # Very long text: past every documented length limit.
    st.builds(operator.mul, st.text(CHARACTERS, min_size=1, max_size=2), st.integers(30, 20_000)),
)
integers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 1, 86_400, 2**31, 2**63, -(2**63), 10**30, 10**400]),
    # Built, not listed: hypothesis reprs its strategies, and these have no repr.
    st.builds(operator.mul, st.sampled_from([1, -1]), st.integers(4301, 5000).map(ten_to)),
)
floats = st.one_of(
    st.floats(), st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 1.0])
)
hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    floats,
    texts,
    st.binary(max_size=16),
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)),
    st.dates(),
    st.complex_numbers(),
    st.decimals(allow_nan=False),  # a signaling NaN cannot be hashed, so not in sets
    st.fractions(),
    st.just(Ellipsis),
    st.builds(object),
    st.builds(PurePosixPath, texts),
)
leaves = st.one_of(
    hashable_leaves,
    st.decimals(),
    st.builds(bytearray, st.binary(max_size=8)),
    st.binary(max_size=8).map(view),
    st.builds(io.BytesIO, st.binary(max_size=8)),
    st.builds(io.StringIO, st.text(max_size=8)),
    st.builds(closed_file),
    st.builds(cyclic_list),
    st.builds(nim.BatchJob),
)


def model_of(cls: type[Any], field_values: st.SearchStrategy[object]) -> st.SearchStrategy[Any]:
    """Instances of one of the library's attrs classes, each field any of ``field_values``.

    The classes check no types, so this makes ``Image("u", "m", "jpg", "w", 1, 1)``,
    ``Push(content=5)`` and ``MessageOption(roam="yes")`` as well as good ones.
    """
    fields = attrs.fields(cls)
    return st.builds(cls, **{field.name: field_values for field in fields})


def models(values: st.SearchStrategy[object]) -> st.SearchStrategy[Any]:
    """The library's own models, with fields right or wrong."""
    field_values = st.one_of(leaves, values)
    flags = st.one_of(st.none(), st.booleans(), leaves)
    return st.one_of(
        st.builds(nim.Text, texts),
        st.builds(nim.Push, content=st.none() | texts, payload=st.none()),
        *[
            model_of(cls, field_values)
            for cls in (nim.Text, nim.Image, nim.Voice, nim.Video, nim.Location)
        ],
        *[model_of(cls, field_values) for cls in (nim.File, nim.Tip, nim.Custom, nim.Push)],
        model_of(nim.MessageOption, flags),
    )


def containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Lists, tuples, sets, dicts and iterators of ``children``."""
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.sets(hashable_leaves, max_size=4),
        st.frozensets(hashable_leaves, max_size=3),
        st.dictionaries(texts, children, max_size=3),
        st.dictionaries(hashable_leaves, children, max_size=3),
        st.lists(children, max_size=3).map(iter),
        st.lists(children, max_size=3).map(stream),
        models(children),
    )


# Scalars get a branch of their own: nested values are mostly refused whole, and
# the bugs hide in the edges of plain values ("", "\x00", b"", a huge int).
anything: st.SearchStrategy[object] = st.one_of(
    st.one_of(texts, integers, floats, st.binary(max_size=4), st.datetimes()),
    st.recursive(st.one_of(leaves, models(leaves)), containers, max_leaves=8),
)

# The issue's type confusions, run for every keyword of every method.
EXPLICIT = [
    ["bob", "carol"],  # a list where one accid is expected
    "false",  # team="false"
    None,  # None for a required parameter
    object(),
    {"bob", "carol"},
    "maybe",
    "",
    float("-inf"),
    float("nan"),
    42,  # an int accid
    -1,
    10**400,  # a float cannot hold it
    HUGE_INT,
    nim.Text(123),  # type: ignore[arg-type]
    nim.Text("bo\ud83d"),
    nim.Push(content=5),  # type: ignore[arg-type]
    nim.Push(content="\udc00"),
    nim.Image("u", "m", "jpg", "w", 1, 1),  # type: ignore[arg-type]
    nim.Location("t", float("nan"), 1.0),
    nim.MessageOption(roam="yes"),  # type: ignore[arg-type]
    "bo\ud83d",  # a lone surrogate in any text
    {"k": "\ud800"},
    ["\ud800"],
    "x" * 6000,
    b"bob",
    b"",
    "\x00",  # no path holds a NUL
    "9" * 5000,  # digits past int()'s limit
    dt.datetime(1, 1, 1),  # local time before year 1 in zones east of UTC
    ".",  # a path that exists but is not a file
    closed_file(),
    cyclic_list(),
]


# --- the property ----------------------------------------------------------------


def refusal_problem(error: Exception, emulator: NimEmulator, stats_moved: bool) -> str | None:
    """What is wrong with a refusal: it must come before the wire and the limiter."""
    if isinstance(error, nim.InvalidRequest):
        if not isinstance(error.parameter, str) or not error.parameter:
            return f"InvalidRequest names no parameter: {error}"
        if "must be" not in str(error):
            return f"InvalidRequest does not say what the value must be: {error}"
    if emulator.calls:
        return f"{type(error).__name__} after {len(emulator.calls)} call(s) reached the emulator"
    if stats_moved:
        return f"{type(error).__name__} after the limiter was used: {error}"
    return None


def answer_problem(emulator: NimEmulator) -> str | None:
    """An accepted call: it went out once, and the emulator answered 200."""
    if [call.code for call in emulator.calls] != [200]:
        answers = [(call.code, call.answer) for call in emulator.calls]
        return f"the client sent it and the emulator answered {show(answers, 240)}"
    return None


def batch_problem(result: nim.BatchResult, emulator: NimEmulator) -> str | None:
    """A bulk send's failed chunks may only be recipients refused before the wire."""
    for chunk in result.failed:
        error = chunk.error
        if not isinstance(error, nim.InvalidRequest):
            return f"a chunk failed with {type(error).__name__}: {error}"
        if not error.parameter or "must be" not in str(error):
            return f"a chunk's InvalidRequest is malformed: {error}"
    refused = [call for call in emulator.calls if call.code != 200]
    if refused:
        call = refused[0]
        return f"the client sent it and the emulator answered {call.code}: {call.answer}"
    # Nothing of a failed chunk went out: the emulator saw exactly the placed recipients.
    sent = sum(len(json.loads(call.form["toAccids"])) for call in emulator.calls)
    placed = result.accepted + len(result.unregister)
    if sent != placed:
        return f"{sent} recipients reached the emulator, but {placed} are accepted or unregister"
    return None


async def violation(method: str, keyword: str, value: object) -> str | None:
    """Call ``method`` with ``value`` for ``keyword``; say how the property broke, if it did."""
    emulator = NimEmulator(APP_KEY, APP_SECRET)
    async with nim.NimClient(
        APP_KEY,
        APP_SECRET,
        base_url="http://nim.test/nimserver/",
        transport=emulator.transport(),
        rate_limits=None,
        limiter=nim.LocalLimiter(),
        retry=nim.RetryPolicy(max_attempts=1),
    ) as client:
        arguments = {**valid_arguments(method), keyword: value}
        stats = client.limiter_stats()
        call: Callable[..., Any] = getattr(client, method)
        try:
            result = await call(**arguments)
        except nim.InvalidRequest as error:
            return refusal_problem(error, emulator, client.limiter_stats() != stats)
        except nim.ConfigurationError as error:
            if keyword not in SETTINGS:
                return f"ConfigurationError for a NIM parameter: {error}"
            return refusal_problem(error, emulator, client.limiter_stats() != stats)
        except nim.NimAPIError as error:
            return f"the client sent it and the emulator answered {error.code}: {error.desc}"
        except Exception as error:
            return f"raised {type(error).__name__}: {show(error, 240)}"
    if isinstance(result, nim.BatchResult):
        return batch_problem(result, emulator)
    return answer_problem(emulator)


def check(method: str, keyword: str, value: object) -> str | None:
    """Run one call; return "method(keyword=value): what broke", or None."""
    problem = anyio.run(violation, method, keyword, value)
    return None if problem is None else f"{method}({keyword}={show(value)}): {problem}"


# --- the tests -------------------------------------------------------------------


def test_every_public_endpoint_is_covered() -> None:
    """The property walks every public endpoint method of NimClient."""
    public = {
        name
        for name, _ in inspect.getmembers(nim.NimClient, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in NOT_ENDPOINTS
    }
    assert public == set(METHODS)


@pytest.mark.parametrize(("method", "keyword"), CASES, ids=CASE_IDS)
def test_the_issues_type_confusions_are_sent_or_refused_before_the_wire(
    method: str, keyword: str
) -> None:
    """Lists for accids, "false" for a flag, None, objects, sets, -inf, surrogates, bad models."""
    problems = [problem for value in EXPLICIT if (problem := check(method, keyword, value))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("method", "keyword"), CASES, ids=CASE_IDS)
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(value=anything)
def test_any_value_for_any_keyword_is_sent_or_refused_before_the_wire(
    method: str, keyword: str, value: object
) -> None:
    """Either the emulator answers 200, or InvalidRequest names a parameter and nothing moved."""
    problem = check(method, keyword, value)
    assert problem is None, problem
