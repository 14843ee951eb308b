"""A damaged journal is refused whole, naming the file or key and what is wrong, before
anything is sent: never a raw exception, never a resume from part of its records."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import nim_async as nim
from nim_async.testing import NimEmulator

from ._support import make_client

pytestmark = pytest.mark.anyio

ACCIDS = [f"u{number:03}" for number in range(50)]
CHUNK = 10


async def _run(emulator: NimEmulator, journal: nim.Journal | Path) -> nim.BatchResult:
    async with make_client(emulator, batch_size=CHUNK) as client:
        return await client.send_batch_msg(
            "alice", ACCIDS, nim.Text("hi"), return_msgid=True, job=nim.BatchJob(journal)
        )


SENT = '{"d": "%s", "s": "sent", "o": null, "t": 1.0}'
# What a damage does to the records (index -> text), and what the refusal says.
DAMAGES: dict[str, tuple[Callable[[dict[int, str]], object], str]] = {
    "one byte lost": (lambda r: r.__setitem__(2, r[2][:-1]), "chunk '2' holds not JSON"),
    "a list where a record belongs": (lambda r: r.__setitem__(1, "[1, 2]"), "a JSON list"),
    "a sent chunk without its outcome": (
        lambda r: r.__setitem__(3, SENT % json.loads(r[3])["d"]),
        "a sent chunk without its outcome",
    ),
    "an unknown state": (
        lambda r: r.__setitem__(0, r[0].replace('"sent"', '"done"')),
        "an unknown state",
    ),
    "msgids that are not numbers": (
        lambda r: r.__setitem__(4, r[4].replace('"msgids": {', '"msgids": {"x": "y", ')),
        "msgids are not a map",
    ),
    "a record lost": (lambda r: r.pop(2), "it wrote 5 chunk records and holds 4"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_a_damaged_sqlite_journal_is_refused_before_anything_is_sent(
    tmp_path: Path, emulator: NimEmulator, damage: str
) -> None:
    """Each kind of damage: JournalUnavailable naming the file; the emulator sees no call."""
    path = tmp_path / "job.sqlite"
    await _run(emulator, path)
    with sqlite3.connect(path) as connection:
        records = dict(connection.execute("SELECT idx, record FROM chunk").fetchall())
        change, message = DAMAGES[damage]
        change(records)
        connection.execute("DELETE FROM chunk")
        connection.executemany("INSERT INTO chunk VALUES (?, ?)", records.items())
    calls = len(emulator.calls)
    with pytest.raises(nim.JournalUnavailable, match=message) as refused:
        await _run(emulator, path)
    assert str(path) in str(refused.value)
    assert len(emulator.calls) == calls


async def test_an_sqlite_journal_without_its_job_record_is_refused(
    tmp_path: Path, emulator: NimEmulator
) -> None:
    """Chunk records without the job's identity cannot be told from another job's."""
    path = tmp_path / "job.sqlite"
    await _run(emulator, path)
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM job")
    with pytest.raises(nim.JournalUnavailable, match="job record is missing"):
        await _run(emulator, path)
    assert len(emulator.calls) == len(ACCIDS) // CHUNK


async def test_a_file_that_is_no_database_is_refused(tmp_path: Path, emulator: NimEmulator) -> None:
    """Not an SQLite file at all: JournalUnavailable, not sqlite3.DatabaseError."""
    path = tmp_path / "job.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(nim.JournalUnavailable, match="cannot be used"):
        await _run(emulator, path)
    assert emulator.calls == []


@pytest.mark.redis
@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_a_damaged_redis_journal_is_refused_before_anything_is_sent(
    redis_url: str, emulator: NimEmulator, damage: str
) -> None:
    """The same damages in a Redis journal's hash."""
    import redis.asyncio as aioredis

    key = f"damaged-{damage.replace(' ', '-')}"
    await _run(emulator, nim.RedisJournal(redis_url, key))
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    fields = await redis.hgetall(f"{key}:journal")
    records = {int(name): text for name, text in fields.items() if name.isdigit()}
    change, message = DAMAGES[damage]
    change(records)
    await redis.hdel(f"{key}:journal", *[name for name in fields if name.isdigit()])
    await redis.hset(f"{key}:journal", mapping={str(i): text for i, text in records.items()})
    await redis.aclose()
    calls = len(emulator.calls)
    with pytest.raises(nim.JournalUnavailable, match=message) as refused:
        await _run(emulator, nim.RedisJournal(redis_url, key))
    assert f"{key}:journal" in str(refused.value)
    assert len(emulator.calls) == calls


@pytest.mark.redis
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("job field gone", "job record is gone"),
        ("a field that is not UTF-8", "chunk"),
        ("a field that is no index", "'first' that is not a chunk index"),
    ],
)
async def test_a_redis_journal_with_strange_fields_is_refused(
    redis_url: str, emulator: NimEmulator, damage: str, message: str
) -> None:
    """FLUSHDB-like loss of the job field, a non-UTF-8 field name, a field that is no index."""
    import redis.asyncio as aioredis

    key = f"strange-{damage.replace(' ', '-')}"
    await _run(emulator, nim.RedisJournal(redis_url, key))
    redis = aioredis.Redis.from_url(redis_url)
    if damage == "job field gone":
        await redis.hdel(f"{key}:journal", "job")
    elif damage == "a field that is not UTF-8":
        await redis.hset(f"{key}:journal", b"\xff\xfe", b"x")
        await redis.hincrby(f"{key}:journal", "chunks", 1)
    else:
        await redis.hset(f"{key}:journal", "first", "{}")
        await redis.hincrby(f"{key}:journal", "chunks", 1)
    await redis.aclose()
    calls = len(emulator.calls)
    with pytest.raises(nim.JournalUnavailable, match=message):
        await _run(emulator, nim.RedisJournal(redis_url, key))
    assert len(emulator.calls) == calls


@pytest.mark.redis
async def test_a_redis_journal_flushed_under_a_running_job_stops_it(
    redis_url: str, emulator: NimEmulator
) -> None:
    """The hash vanished mid-job (FLUSHDB, eviction): the next write refuses, nothing more goes."""
    import redis.asyncio as aioredis

    journal = nim.RedisJournal(redis_url, "flushed-mid-job")
    await journal.open("{}")
    redis = aioredis.Redis.from_url(redis_url)
    await redis.delete("flushed-mid-job:journal")
    await redis.aclose()
    from nim_async._journal import ChunkRecord

    with pytest.raises(nim.JournalUnavailable, match="vanished"):
        await journal.write(0, ChunkRecord("0" * 32, "sending"))
    await journal.aclose()
