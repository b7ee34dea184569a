"""JsonlSink and SqliteSink: the rows that go in come out, with the documented format, in real files."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokenlog
from tokenlog import JsonlSink, SinkError, SqliteSink, UsageRecord
from tokenlog.record import UNIT_NAMES

WHEN = datetime(2023, 10, 27, 10, 30, 0, 123456, tzinfo=timezone.utc)
ODD_STRINGS = ["a,b", 'say "hi"', "two\nlines", "cr\rhere", "nul\x00byte", "tab\there", "héllo wörld ✓", "🦙", "\\"]


def full_record(model: str = "mistral-small-latest", **changes: object) -> UsageRecord:
    fields: dict[str, object] = {
        "session": "nightly",
        "function": "app.ask",
        "latency_ms": 12.3456,
        "request_id": "cmpl-9",
        "tags": {"team": "a", "run": "42"},
    }
    fields.update(changes)
    return UsageRecord(WHEN, model, 12, 5, 17, **fields)  # type: ignore[arg-type]


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


def read_table(path: Path, table: str = "usage") -> list[dict[str, object]]:
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid')]


EXPECTED = {
    "timestamp": "2023-10-27T10:30:00.123456+00:00",
    "model": "mistral-small-latest",
    "prompt_tokens": 12,
    "completion_tokens": 5,
    "total_tokens": 17,
    "session": "nightly",
    "function": "app.ask",
    "latency_ms": 12.346,
}
COLUMNS = [*EXPECTED, "request_id", "tags"]  # the documented order of JSONL keys (a row without units)
UNITS = {name: None for name in UNIT_NAMES}  # SQLite has a column for each unit: NULL when the response named none


# -- JSONL -------------------------------------------------------------------------------------


def test_jsonl_writes_one_object_a_line_with_the_documented_keys_in_order(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    JsonlSink(path).write(full_record())
    (line,) = path.read_text().splitlines()
    assert list(json.loads(line)) == COLUMNS
    assert json.loads(line) == {**EXPECTED, "request_id": "cmpl-9", "tags": {"run": "42", "team": "a"}}


def test_jsonl_writes_null_for_missing_context_and_an_empty_tags_object(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    JsonlSink(path).write(UsageRecord(WHEN, "m", 1, 2, 3))
    assert read_jsonl(path) == [
        {
            "timestamp": "2023-10-27T10:30:00.123456+00:00",
            "model": "m",
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": 3,
            "session": None,
            "function": None,
            "latency_ms": None,
            "request_id": None,
            "tags": {},
        }
    ]


@pytest.mark.parametrize("latency", [float("nan"), float("inf"), float("-inf")])
def test_jsonl_writes_a_non_finite_latency_as_null_so_every_line_stays_valid_json(
    tmp_path: Path, latency: float
) -> None:
    path = tmp_path / "usage.jsonl"
    JsonlSink(path).write(full_record(latency_ms=latency))
    assert json.loads(path.read_text(), parse_constant=pytest.fail)["latency_ms"] is None


@pytest.mark.parametrize("text", [*ODD_STRINGS, "lone \udc80 surrogate", "\ud800"])
def test_jsonl_round_trips_any_string_on_one_ascii_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "usage.jsonl"
    JsonlSink(path).write(full_record(model=text, session=text, tags={text: text}))
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1
    assert raw.isascii()
    (row,) = read_jsonl(path)
    assert (row["model"], row["session"], row["tags"]) == (text, text, {text: text})


def test_a_jsonl_line_cut_by_a_killed_writer_is_not_glued_onto(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_text('{"timestamp":"2023-10-27T10:30:00.123456+00:00","mod')
    JsonlSink(path).write(full_record())
    lines = path.read_text().split("\n")
    assert lines[0] == '{"timestamp":"2023-10-27T10:30:00.123456+00:00","mod'
    assert json.loads(lines[1])["model"] == "mistral-small-latest"
    assert lines[2] == ""


def test_jsonl_appends_to_an_existing_file_and_keeps_order_in_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    JsonlSink(path).write(full_record(model="first"))
    JsonlSink(path).write_many([full_record(model=f"m{i}") for i in range(5)])
    assert [row["model"] for row in read_jsonl(path)] == ["first", "m0", "m1", "m2", "m3", "m4"]


def test_jsonl_in_an_unwritable_place_raises_sink_error_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SinkError, match=str(blocker / "usage.jsonl")):
        JsonlSink(blocker / "usage.jsonl").write(full_record())


def test_jsonl_keeps_its_file_after_a_chdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = JsonlSink("relative.jsonl")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    sink.write(full_record())
    assert len(read_jsonl(tmp_path / "relative.jsonl")) == 1


def test_a_forked_child_appends_jsonl_through_its_own_lock(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    sink = JsonlSink(path)
    sink.write(UsageRecord(WHEN, "parent", 0, 0, 0))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            for i in range(1, 101):
                sink.write(UsageRecord(WHEN, "child", i, 0, i))
        finally:
            os._exit(0)
    for i in range(101, 201):
        sink.write(UsageRecord(WHEN, "parent", i, 0, i))
    os.waitpid(pid, 0)
    assert sorted(row["prompt_tokens"] for row in read_jsonl(path)) == list(range(201))  # type: ignore[type-var]


# -- SQLite ------------------------------------------------------------------------------------


def test_sqlite_stores_every_field_in_columns_of_those_names(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    SqliteSink(path).write(full_record())
    assert read_table(path) == [{**EXPECTED, "request_id": "cmpl-9", "tags": '{"run":"42","team":"a"}', **UNITS}]


def test_sqlite_creates_the_schema_with_indexes_on_timestamp_and_model_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    SqliteSink(path, table="llm_usage").write(full_record())
    with sqlite3.connect(path) as connection:
        columns = {row[1]: row[2] for row in connection.execute('PRAGMA table_info("llm_usage")')}
        indexed = {
            connection.execute(f'PRAGMA index_info("{name}")').fetchone()[2]
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert list(columns) == [*COLUMNS, *UNIT_NAMES]
    assert columns["timestamp"] == "TEXT"
    assert columns["prompt_tokens"] == "INTEGER"
    assert columns["latency_ms"] == "REAL"
    assert columns["tags"] == "TEXT"
    assert indexed == {"timestamp", "model"}
    assert mode == "wal"


def test_sqlite_rows_answer_plain_sql(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    sink = SqliteSink(path)
    for day, model, tokens in [(1, "small", 10), (1, "large", 100), (2, "small", 20), (3, "small", 30)]:
        when = WHEN + timedelta(days=day)
        sink.write(UsageRecord(when, model, tokens, 0, tokens, tags={"team": "a" if day < 3 else "b"}))
    with sqlite3.connect(path) as connection:
        by_model = connection.execute(
            "SELECT model, sum(total_tokens) FROM usage WHERE timestamp >= '2023-10-28' "
            "AND timestamp < '2023-10-30' GROUP BY model ORDER BY model"
        ).fetchall()
        by_team = connection.execute(
            "SELECT json_extract(tags, '$.team'), sum(total_tokens) FROM usage GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert by_model == [("large", 100), ("small", 30)]
    assert by_team == [("a", 130), ("b", 30)]


@pytest.mark.parametrize("text", ODD_STRINGS)
def test_sqlite_round_trips_awkward_strings(tmp_path: Path, text: str) -> None:
    path = tmp_path / "usage.db"
    SqliteSink(path).write(full_record(model=text, request_id=text, tags={text: text}))
    (row,) = read_table(path)
    assert (row["model"], row["request_id"], json.loads(str(row["tags"]))) == (text, text, {text: text})


def test_sqlite_stores_a_lone_surrogate_escaped_with_a_warning_and_exact_in_tags(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with pytest.warns(tokenlog.TokenlogWarning, match="not valid Unicode"):
        SqliteSink(path).write(full_record(model="bad \udc80 byte", tags={"k": "\udc80"}))
    (row,) = read_table(path)
    assert row["model"] == "bad \\udc80 byte"
    assert json.loads(str(row["tags"])) == {"k": "\udc80"}


def test_sqlite_writes_a_non_finite_latency_as_null(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    SqliteSink(path).write(full_record(latency_ms=float("inf")))
    assert read_table(path)[0]["latency_ms"] is None


def test_sqlite_refuses_a_table_name_that_is_not_an_identifier() -> None:
    with pytest.raises(ValueError, match="letters, digits and '_'"):
        SqliteSink("usage.db", table='usage"; DROP TABLE x; --')


def test_sqlite_refuses_an_in_memory_database_and_points_to_memory_sink() -> None:
    with pytest.raises(ValueError, match="MemorySink"):
        SqliteSink(":memory:")


def test_sqlite_refuses_an_existing_table_of_another_shape_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE usage (day TEXT, cost REAL)")
    with pytest.raises(SinkError, match=r"already has a table 'usage'.*pass another table="):
        SqliteSink(path).write(full_record())
    SqliteSink(path, table="tokenlog_usage").write(full_record())
    assert len(read_table(path, "tokenlog_usage")) == 1


def test_sqlite_in_an_unwritable_place_raises_sink_error_and_works_once_it_can(tmp_path: Path) -> None:
    blocker = tmp_path / "dir"
    blocker.write_text("")
    sink = SqliteSink(blocker / "usage.db")
    with pytest.raises(SinkError, match=str(blocker / "usage.db")):
        sink.write(full_record())
    blocker.unlink()
    blocker.mkdir()
    sink.write(full_record())
    assert len(read_table(blocker / "usage.db")) == 1


def test_sqlite_waits_for_a_writer_that_holds_the_database_then_gives_up_with_sink_error(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    sink = SqliteSink(path, timeout=0.05, retries=1)
    sink.write(full_record(model="before"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write transaction
    with pytest.raises(SinkError, match="database is locked"):
        sink.write(full_record(model="blocked"))
    holder.execute("ROLLBACK")
    holder.close()
    sink.write(full_record(model="after"))
    assert [row["model"] for row in read_table(path)] == ["before", "after"]


def test_sqlite_is_safe_from_many_threads_through_one_sink(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    sink = SqliteSink(path)

    def write(worker: int) -> None:
        for i in range(50):
            sink.write(UsageRecord(WHEN, f"w{worker}", i, 0, i))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = read_table(path)
    assert len(rows) == 400
    for worker in range(8):
        assert [row["prompt_tokens"] for row in rows if row["model"] == f"w{worker}"] == list(range(50))


def test_sqlite_close_then_write_opens_the_database_again(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    sink = SqliteSink(path)
    sink.write(full_record())
    sink.close()
    sink.write(full_record())
    assert len(read_table(path)) == 2


# -- both, for any record ----------------------------------------------------------------------

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
records = st.builds(
    UsageRecord,
    timestamp=st.datetimes(timezones=st.just(timezone.utc)),
    model=any_text,
    prompt_tokens=st.integers(0, 2**62),
    completion_tokens=st.integers(0, 2**62),
    total_tokens=st.integers(0, 2**62),
    session=st.none() | any_text,
    function=st.none() | any_text,
    latency_ms=st.none() | st.integers(0, 10**12).map(lambda n: n / 1000),  # the format keeps three decimals
    request_id=st.none() | any_text,
    tags=st.dictionaries(any_text, any_text, max_size=3),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=records)
def test_any_record_reads_back_from_jsonl_as_the_same_record(tmp_path: Path, record: UsageRecord) -> None:
    path = tmp_path / "property.jsonl"
    path.unlink(missing_ok=True)
    JsonlSink(path).write(record)
    (row,) = read_jsonl(path)
    assert list(row) == COLUMNS
    timestamp = datetime.fromisoformat(str(row.pop("timestamp")))
    assert UsageRecord(timestamp, **row) == record  # type: ignore[arg-type]
