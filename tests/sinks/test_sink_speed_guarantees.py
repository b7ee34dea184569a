"""The fast paths of JsonlSink and SqliteSink keep what the slow ones promised, in real files and databases.

JSONL lines are built from parts instead of ``json.dumps`` of a dict, and go through the locked-append fast path
(as CSV rows do): the text must stay byte for byte what ``json.dumps`` writes, and a file deleted or cut short
by another writer is handled as before. SQLite rows that threads write at the same moment share a transaction
(group commit): each write still returns only once its row is committed, a failure reaches exactly the writes
it concerns, and a forked child never commits rows of its parent's threads. Speed itself is measured in
``benchmarks/bench_csv.py``, never asserted here.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tokenlog
from tokenlog import JsonlSink, SinkError, SqliteSink, UsageRecord
from tokenlog._append import CHECK_EVERY
from tokenlog.sinks._fields import fields, tags_json
from tokenlog.sinks.jsonl import format_line

WHEN = datetime(2023, 10, 27, 10, 30, 0, 123456, tzinfo=timezone.utc)


def record(prompt: int, model: str = "mistral-small-latest", **changes: object) -> UsageRecord:
    return UsageRecord(WHEN, model, prompt, 1, prompt + 1, **changes)  # type: ignore[arg-type]


def dumps_line(item: UsageRecord) -> str:
    """The JSONL line as json.dumps writes it: what format_line must equal, byte for byte."""
    return json.dumps(fields(item), ensure_ascii=True, separators=(",", ":")) + "\n"


# -- JSONL: the same bytes ------------------------------------------------------------------------

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)  # lone surrogates, NUL, ...
latencies = (
    st.none()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(10**20), 10**20)
    | st.sampled_from([0.0, -0.0, 1e-300, 1e300, 12.3455, 0.0005, 2.675])
)
any_record = st.builds(
    UsageRecord,
    timestamp=st.datetimes(timezones=st.just(timezone.utc)),
    model=any_text,
    prompt_tokens=st.integers(0, 2**63 - 1),
    completion_tokens=st.integers(0, 2**63 - 1),
    total_tokens=st.integers(0, 2**63 - 1),
    session=st.none() | any_text,
    function=st.none() | any_text,
    latency_ms=latencies,
    request_id=st.none() | any_text,
    tags=st.dictionaries(any_text, any_text, max_size=4),
)


@settings(max_examples=500, deadline=None)
@given(item=any_record)
@example(item=record(1, 'm\udc80\x00\u2028\U0001f999"\\/', session="\x7f", tags={"\udcff": "é", "a": "\n"}))
def test_a_jsonl_line_is_byte_for_byte_what_json_dumps_writes(item: UsageRecord) -> None:
    line = format_line(item)
    assert line == dumps_line(item)
    assert line.isascii()
    assert line.count("\n") == 1


class Text(str):
    """A str subclass, as a caller might pass: json.dumps writes it as text."""


class Milliseconds(float):
    """A float subclass with its own repr (numpy's float64 prints ``np.float64(1.5)``): JSON must not use it."""

    def __repr__(self) -> str:
        return f"Milliseconds({float(self)!r})"


@pytest.mark.parametrize(
    "changes",
    [
        {"model": Text("sub, class")},
        {"session": Text("s")},
        {"function": 7},  # not text: json.dumps writes a number
        {"request_id": 7.5},
        {"latency_ms": Milliseconds(1.23456)},
        {"latency_ms": 12},
        {"latency_ms": True},
        {"tags": {"b": "2", "a": "1"}},
    ],
)
def test_values_of_other_types_are_written_as_json_dumps_writes_them(changes: dict[str, object]) -> None:
    item = record(3, **changes)
    assert format_line(item) == dumps_line(item)


def test_a_latency_json_cannot_hold_fails_as_json_dumps_fails() -> None:
    item = record(3, latency_ms=Decimal("1.5"))
    with pytest.raises(TypeError):
        dumps_line(item)
    with pytest.raises(TypeError):
        format_line(item)


def test_tags_read_from_the_cache_are_the_tags_of_the_record() -> None:
    """Tags equal as Python values but not as JSON (1 == True) never share a cached text."""
    assert tags_json(record(1, tags={"a": "1"})) == tags_json(record(2, tags={"a": "1"})) == '{"a":"1"}'
    # A MappingProxyType is kept as given, not made text: only a caller building one by hand gets here.
    made_by_hand = [MappingProxyType({1: "x"}), MappingProxyType({True: "x"}), MappingProxyType({1.0: "x"})]
    for tags in made_by_hand * 2:  # twice: the second time, a cache keyed on equal values would answer
        assert tags_json(record(1, tags=tags)) == json.dumps(dict(tags), sort_keys=True, separators=(",", ":"))
    long = {"k": "v" * 2000}
    assert tags_json(record(1, tags=long)) == json.dumps(long, sort_keys=True, separators=(",", ":"))


def test_a_jsonl_file_holds_exactly_the_json_dumps_lines_of_its_records(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    sink = JsonlSink(path)
    items = [record(i, tags={"team": str(i % 3)}, latency_ms=i / 7) for i in range(50)]
    for item in items[:40]:
        sink.write(item)  # the first through the general path, the rest through the fast path
    sink.write_many(items[40:])
    assert path.read_bytes() == "".join(dumps_line(item) for item in items).encode("ascii")


# -- JSONL: the fast path keeps the file whole -------------------------------------------------------


def prompts(path: Path) -> list[int]:
    return [json.loads(line)["prompt_tokens"] for line in path.read_text(encoding="ascii").splitlines()]


def test_a_line_cut_by_another_writer_after_this_sink_wrote_is_not_glued_onto(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    sink = JsonlSink(path)
    sink.write(record(0))
    sink.write(record(1))  # the fast path now knows where the file ends
    with open(path, "ab") as other:  # another process killed half-way through its line
        other.write(b'{"timestamp":"2023-10-27T10:3')
    sink.write(record(2))
    lines = path.read_bytes().split(b"\n")
    assert lines[2] == b'{"timestamp":"2023-10-27T10:3'
    assert [json.loads(line)["prompt_tokens"] for line in lines[:2] + lines[3:-1]] == [0, 1, 2]


def test_lines_appended_by_another_writer_between_two_rows_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    sink, other = JsonlSink(path), JsonlSink(path)
    for i in range(0, 20, 2):
        sink.write(record(i))
        other.write(record(i + 1))
    assert prompts(path) == list(range(20))


def deleted_after_one_row(path: Path) -> JsonlSink:
    """A sink that wrote row 0 to ``path`` (the write checked the file), and the file deleted since."""
    sink = JsonlSink(path)
    sink.write(record(0))
    path.unlink()
    return sink


def test_a_deleted_jsonl_file_is_created_again_at_the_next_check_with_the_rows_written_meanwhile(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.jsonl"
    sink = deleted_after_one_row(path)
    sink.write(record(1))  # within 50 ms of the last check: it goes to the deleted file, and is kept
    tokenlog.flush()  # checks now (as the next write after 50 ms, or the end of the program, would)
    assert prompts(path) == [1]


def test_rows_written_to_a_deleted_jsonl_file_are_written_again_in_order_by_the_next_write_after_the_interval(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.jsonl"
    sink = deleted_after_one_row(path)
    for prompt in (1, 2, 3):
        sink.write(record(prompt))
    assert not path.exists()
    time.sleep(CHECK_EVERY * 1.5)
    sink.write(record(4))
    assert prompts(path) == [1, 2, 3, 4]


def test_rows_written_to_a_deleted_jsonl_file_are_written_again_when_the_program_ends(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "usage.jsonl"
    script = (
        "import os, sys, tokenlog\n"
        "from datetime import datetime, timezone\n"
        "sink = tokenlog.JsonlSink(sys.argv[1])\n"
        "now = datetime.now(timezone.utc)\n"
        "sink.write(tokenlog.UsageRecord(now, 'm', 1, 1, 2))\n"
        "os.unlink(sys.argv[1])\n"
        "sink.write(tokenlog.UsageRecord(now, 'm', 2, 2, 4))\n"
        "sink.write(tokenlog.UsageRecord(now, 'm', 3, 3, 6))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    assert prompts(path) == [2, 3]


def test_close_checks_the_file_first(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    sink = deleted_after_one_row(path)
    sink.write(record(1))
    sink.close()
    assert prompts(path) == [1]
    assert sink.take_unwritten() == []


# -- SQLite: group commit ---------------------------------------------------------------------------


def models(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        found = [model for (model,) in connection.execute("SELECT model FROM usage ORDER BY rowid")]
    connection.close()
    return found


def wal_frames(path: Path) -> int:
    """Frames in the database's write-ahead log: each transaction appends every page it changed."""
    with sqlite3.connect(path) as connection:
        page = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    wal = Path(f"{path}-wal")
    return (wal.stat().st_size - 32) // (24 + page) if wal.exists() and wal.stat().st_size else 0


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A database with a row, and another connection that takes its write lock with ``BEGIN IMMEDIATE`` when
    the test says (as another process in the middle of a transaction would)."""
    path = tmp_path / "usage.db"
    SqliteSink(path).write(record(0, "before"))
    holder = sqlite3.connect(path, isolation_level=None)
    yield path, holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def start_writers(sink: SqliteSink, items: list[UsageRecord]) -> tuple[list[threading.Thread], dict[int, object]]:
    """One thread per record, each writing it; outcome[i] is None (committed) or the exception it raised."""
    outcome: dict[int, object] = {}

    def write(i: int) -> None:
        try:
            sink.write(items[i])
            outcome[i] = None
        except Exception as exc:
            outcome[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(items))]
    for thread in threads:
        thread.start()
    return threads, outcome


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def queued(sink: SqliteSink) -> int:
    """Writes waiting for a transaction (the sink's queue: looked at, never changed)."""
    return len(sink._waiting)


def test_rows_that_arrive_while_a_transaction_waits_share_the_next_one(held: tuple[Path, sqlite3.Connection]) -> None:
    path, holder = held
    sink = SqliteSink(path, timeout=30)
    sink.write(record(0, "warm"))  # the connection is open, the schema read
    holder.execute("BEGIN IMMEDIATE")
    frames = wal_frames(path)
    first, first_outcome = start_writers(sink, [record(1, "leader")])
    wait_until(lambda: sink._leading, "the first write leads a transaction (held by the busy database)")
    threads, outcome = start_writers(sink, [record(i, f"w{i}") for i in range(8)])
    wait_until(lambda: queued(sink) == 8, "eight writes wait for the next transaction")
    assert all(thread.is_alive() for thread in threads)  # none returned: none of their rows is committed
    holder.execute("ROLLBACK")
    for thread in first + threads:
        thread.join(timeout=60)
    assert first_outcome == {0: None}
    assert outcome == dict.fromkeys(range(8))
    assert sorted(models(path)) == sorted(["before", "warm", "leader", *(f"w{i}" for i in range(8))])
    per_transaction = wal_frames(path) - frames  # two transactions: the leader's, then one for all eight
    one_each = 9 * 3  # nine transactions of one row each would change the table and its two indexes nine times
    assert per_transaction < one_each / 2, f"{per_transaction} WAL frames for 9 rows"


def test_every_write_returns_only_once_its_row_is_committed(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    sink = SqliteSink(path)
    sink.write(record(0, "first"))
    seen: list[str] = []

    def write(worker: int) -> None:
        reader = sqlite3.connect(path)  # another connection: it sees committed rows only
        try:
            for i in range(40):
                sink.write(record(i, f"t{worker}"))
                query = "SELECT count(*) FROM usage WHERE model = ? AND prompt_tokens = ?"
                if reader.execute(query, (f"t{worker}", i)).fetchone() != (1,):
                    seen.append(f"t{worker} row {i} not committed when write() returned")
        finally:
            reader.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == []
    with sqlite3.connect(path) as connection:
        for worker in range(6):
            query = "SELECT prompt_tokens FROM usage WHERE model = ? ORDER BY rowid"
            assert [p for (p,) in connection.execute(query, (f"t{worker}",))] == list(range(40))  # in order
    connection.close()


def test_a_row_sqlite_cannot_store_fails_its_own_write_only(held: tuple[Path, sqlite3.Connection]) -> None:
    path, holder = held
    sink = SqliteSink(path, timeout=30)
    sink.write(record(0, "warm"))
    holder.execute("BEGIN IMMEDIATE")
    first, first_outcome = start_writers(sink, [record(1, "leader")])
    wait_until(lambda: sink._leading, "the first write leads a transaction")
    items = [record(i, f"w{i}") for i in range(5)]
    items[2] = record(2, "bad", latency_ms=Decimal("1.5"))  # SQLite cannot bind a Decimal
    threads, outcome = start_writers(sink, items)
    wait_until(lambda: queued(sink) == 5, "five writes wait, the bad one among them")
    holder.execute("ROLLBACK")
    for thread in first + threads:
        thread.join(timeout=60)
    assert first_outcome == {0: None}
    assert isinstance(outcome[2], SinkError)
    # sqlite3's words for it: "type 'decimal.Decimal' is not supported" (3.11+), "probably unsupported type" (3.10)
    assert re.search(r"not supported|unsupported type", str(outcome[2]))
    assert {i: outcome[i] for i in (0, 1, 3, 4)} == dict.fromkeys((0, 1, 3, 4))
    assert sorted(models(path)) == sorted(["before", "warm", "leader", "w0", "w1", "w3", "w4"])


def test_a_database_busy_beyond_the_timeout_fails_every_waiting_write_with_sink_error(
    held: tuple[Path, sqlite3.Connection],
) -> None:
    path, holder = held
    holder.execute("BEGIN IMMEDIATE")
    sink = SqliteSink(path, timeout=0.2, retries=0)
    threads, outcome = start_writers(sink, [record(i, f"w{i}") for i in range(6)])
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcome) == list(range(6))
    assert all(isinstance(exc, SinkError) and "database is locked" in str(exc) for exc in outcome.values())
    holder.execute("ROLLBACK")
    sink.write(record(9, "after"))  # the lock is free: writing works again
    assert models(path) == ["before", "after"]


def test_a_forked_child_commits_its_own_rows_never_those_its_parents_threads_were_waiting_with(
    tmp_path: Path,
) -> None:
    """Forked while a transaction is in flight (its connection lock held here, as a leader holds it) and three
    writes of the parent's threads wait for the next one: the child's queue is its own."""
    path = tmp_path / "usage.db"
    sink = SqliteSink(path, timeout=30)
    sink.write(record(0, "warm"))
    with sink._lock:  # the connection is busy with a transaction: the writes below wait for it
        first, _ = start_writers(sink, [record(1, "parent-leader")])
        wait_until(lambda: sink._leading, "a parent thread leads a transaction")
        threads, outcome = start_writers(sink, [record(i, f"parent-{i}") for i in range(3)])
        wait_until(lambda: queued(sink) == 3, "three parent writes wait")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: "this process is multi-threaded"
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child: its own queue, lock and connection
            status = 1
            try:
                sink.write(record(7, "child"))
                sink.close()
                status = 0
            finally:
                os._exit(status)
    for thread in first + threads:
        thread.join(timeout=60)
    deadline = time.monotonic() + 60
    while not (done := os.waitpid(pid, os.WNOHANG))[0]:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("the forked child was still running after 60 s: deadlocked")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert outcome == dict.fromkeys(range(3))
    assert sorted(models(path)) == sorted(["warm", "parent-leader", "parent-0", "parent-1", "parent-2", "child"])
