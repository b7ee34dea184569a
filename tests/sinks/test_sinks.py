"""LoggingSink, MemorySink, CallbackSink, capture_usage, and routing any mix of sinks."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

import tokenlog
from tests.helpers import read_rows
from tests.sdk import chat_response
from tokenlog import CallbackSink, LoggingSink, MemorySink, UsageRecord, track_usage, usage_session
from tokenlog.testing import capture_usage

WHEN = datetime(2023, 10, 27, 10, 30, 0, 123456, tzinfo=timezone.utc)


@track_usage
def ask(prompt: int = 10, completion: int = 5) -> dict[str, object]:
    return chat_response(prompt, completion)


# -- LoggingSink -------------------------------------------------------------------------------


def test_logging_sink_logs_one_record_per_row_with_the_fields_in_extra(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tokenlog")
    record = UsageRecord(WHEN, "mistral-small", 12, 5, 17, session="s", latency_ms=1.5, tags={"team": "a"})
    LoggingSink().write(record)
    (logged,) = [r for r in caplog.records if r.name == "tokenlog"]
    assert logged.levelno == logging.INFO
    assert logged.getMessage() == "mistral-small: 12 prompt + 5 completion = 17 tokens"
    assert logged.__dict__["timestamp"] == "2023-10-27T10:30:00.123456+00:00"
    assert (logged.__dict__["model"], logged.__dict__["prompt_tokens"], logged.__dict__["total_tokens"]) == (
        "mistral-small",
        12,
        17,
    )
    assert (logged.__dict__["session"], logged.__dict__["latency_ms"], logged.__dict__["tags"]) == (
        "s",
        1.5,
        {"team": "a"},
    )


def test_logging_sink_uses_the_logger_and_level_you_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="myapp.usage")
    tokenlog.configure(sinks=[LoggingSink("myapp.usage", level="DEBUG")])
    ask()
    (logged,) = [r for r in caplog.records if r.name == "myapp.usage"]
    assert logged.levelno == logging.DEBUG
    assert logged.__dict__["function"].endswith("ask")


def test_logging_sink_writes_nothing_when_the_level_is_disabled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="quiet")
    LoggingSink("quiet", level=logging.INFO).write(UsageRecord(WHEN, "m", 1, 1, 2))
    assert [r for r in caplog.records if r.name == "quiet"] == []


def test_logging_sink_refuses_an_unknown_level_name() -> None:
    with pytest.raises(ValueError, match="'LOUD' is not a logging level name"):
        LoggingSink(level="LOUD")


# -- MemorySink, CallbackSink --------------------------------------------------------------------


def test_memory_sink_keeps_the_records_in_order() -> None:
    sink = MemorySink()
    tokenlog.configure(sinks=[sink])
    for i in range(3):
        ask(i, 1)
    assert [r.prompt_tokens for r in sink.records] == [0, 1, 2]
    assert not Path("mistral_usage_log.csv").exists()


def test_callback_sink_calls_the_function_with_each_record_in_the_calling_thread() -> None:
    seen: list[tuple[int, str]] = []

    def remember(record: UsageRecord) -> None:
        seen.append((record.total_tokens, threading.current_thread().name))

    tokenlog.configure(sinks=[CallbackSink(remember)])
    ask(2, 3)
    assert seen == [(5, threading.current_thread().name)]


def test_callback_sink_refuses_something_it_cannot_call_and_an_async_function() -> None:
    async def later(record: UsageRecord) -> None: ...

    with pytest.raises(TypeError, match="needs a function"):
        CallbackSink(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async function"):
        CallbackSink(later)


# -- capture_usage ---------------------------------------------------------------------------


def test_capture_usage_collects_the_records_made_inside_and_writes_no_file() -> None:
    with capture_usage() as records:
        ask(1, 1)
        ask(2, 2)
    ask(3, 3)
    assert [r.total_tokens for r in records] == [2, 4]
    assert [row["TotalTokens"] for row in read_rows("mistral_usage_log.csv")] == ["6"]


def test_capture_usage_sees_records_from_other_threads_and_every_routing() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    def routed() -> dict[str, object]:
        return chat_response(7, 7)

    with capture_usage() as records, usage_session("s") as session:
        worker = threading.Thread(target=ask)
        worker.start()
        worker.join()
        routed()
    assert sorted(r.total_tokens for r in records) == [14, 15]
    assert session.calls == 2  # the thread started inside the session counts for it; the capture saw both
    assert sink.records == []


def test_capture_usage_with_write_also_writes_where_rows_would_go() -> None:
    with capture_usage(write=True) as records:
        ask(1, 1)
    assert len(records) == 1
    assert len(read_rows("mistral_usage_log.csv")) == 1


def test_nested_captures_each_get_every_record() -> None:
    with capture_usage() as outer:
        ask(1, 1)
        with capture_usage() as inner:
            ask(2, 2)
    assert ([r.total_tokens for r in outer], [r.total_tokens for r in inner]) == ([2, 4], [4])


# -- routing a mix ------------------------------------------------------------------------------


def test_configure_takes_any_mix_of_sink_objects_paths_and_schemes(tmp_path: Path) -> None:
    memory = MemorySink()
    tokenlog.configure(sinks=[memory, "usage.csv", tmp_path / "usage.jsonl", "sqlite:///usage.db", "logging://"])
    ask(4, 4)
    assert [r.total_tokens for r in memory.records] == [8]
    assert [row["TotalTokens"] for row in read_rows("usage.csv")] == ["8"]
    assert [json.loads(line)["total_tokens"] for line in (tmp_path / "usage.jsonl").read_text().splitlines()] == [8]
    with sqlite3.connect("usage.db") as connection:
        assert connection.execute("SELECT total_tokens FROM usage").fetchall() == [(8,)]


def test_track_usage_and_sessions_take_specs_too(tmp_path: Path) -> None:
    @track_usage(sinks=["calls.jsonl"])
    def routed() -> dict[str, object]:
        return chat_response(1, 2)

    routed()
    with usage_session(sinks=["sqlite:///session.db?table=runs"]):
        ask(3, 4)
    assert json.loads((tmp_path / "calls.jsonl").read_text())["total_tokens"] == 3
    with sqlite3.connect(tmp_path / "session.db") as connection:
        assert connection.execute("SELECT total_tokens FROM runs").fetchall() == [(7,)]


def test_importing_tokenlog_loads_neither_opentelemetry_nor_sqlite3() -> None:
    code = "import sys, tokenlog; print(sorted(m for m in ('opentelemetry', 'sqlite3') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class _FieldsSink:
    """A user's sink with the optional write_fields capability: it stores the tuples it is given."""

    def __init__(self) -> None:
        self.fields: list[tuple[object, ...]] = []
        self.records: list[UsageRecord] = []

    def write(self, record: UsageRecord) -> None:
        self.records.append(record)

    def write_fields(self, fields: tuple[object, ...]) -> bool:
        if fields[1] == "refused-model":
            return False  # this entry does not take it: tokenlog builds the record and calls write()
        self.fields.append(fields)
        return True

    def flush(self) -> None: ...

    def close(self) -> None: ...


def test_a_user_sink_with_write_fields_gets_the_fields_of_each_row_and_no_record() -> None:
    sink = _FieldsSink()

    @track_usage(sinks=[sink], tags={"feature": "a"})
    def ask(prompt: int) -> dict[str, object]:
        return chat_response(prompt, 2)

    ask(3)
    assert sink.records == []
    ((timestamp, model, prompt, completion, total, session, function, latency, request_id, tags),) = sink.fields
    assert (model, prompt, completion, total, session, request_id) == ("mistral-small-latest", 3, 2, 5, None, "cmpl-1")
    assert timestamp.tzinfo is timezone.utc
    assert latency >= 0
    assert dict(tags) == {"feature": "a"}
    assert function.endswith("ask")
    # The fields are exactly those of the record the dataclass would build from them.
    assert UsageRecord(*sink.fields[0]).total_tokens == 5


def test_a_user_sink_gets_a_record_when_its_write_fields_declines_or_a_session_keeps_records() -> None:
    sink = _FieldsSink()

    @track_usage(sinks=[sink])
    def ask(model: str) -> dict[str, object]:
        return chat_response(1, 1, model=model)

    ask("refused-model")
    assert [r.model for r in sink.records] == ["refused-model"]
    with usage_session("keeps"):
        ask("mistral-small-latest")  # the session keeps its records: one is built, and the sink gets it
    with usage_session("totals", keep_records=False) as totals:
        ask("mistral-large-latest")  # a totals-only session needs no record: the sink gets fields
    assert [r.model for r in sink.records] == ["refused-model", "mistral-small-latest"]
    assert [f[1] for f in sink.fields] == ["mistral-large-latest"]
    assert (totals.calls, totals.total_tokens, totals.records) == (1, 2, [])


def test_a_csv_sink_subclass_that_overrides_write_gets_records(tmp_path: Path) -> None:
    class Upper(tokenlog.CsvSink):
        def write(self, record: UsageRecord) -> None:
            super().write(dataclasses.replace(record, model=record.model.upper()))

    path = tmp_path / "usage.csv"

    @track_usage(sinks=[Upper(path)])
    def ask() -> dict[str, object]:
        return chat_response(1, 1)

    ask()
    ask()
    assert [row["Model"] for row in read_rows(path)] == ["MISTRAL-SMALL-LATEST"] * 2
