"""CsvSink writes the mandatory format, whole lines only, and never loses or misaligns a row."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import portalocker
import pytest

import tokenlog
from tests.helpers import check_writer_rows, read_rows, run_writer_processes
from tests.sdk import chat_response
from tokenlog import CsvSink, SinkError, UsageRecord, track_usage
from tokenlog._append import CHECK_EVERY
from tokenlog.delivery.guard import guard

HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens"
WHEN = datetime(2023, 10, 27, 10, 30, 0, 123456, tzinfo=timezone.utc)


def record(
    model: str = "mistral-small-latest", prompt: int = 12, completion: int = 5, **context: object
) -> UsageRecord:
    return UsageRecord(WHEN, model, prompt, completion, prompt + completion, **context)  # type: ignore[arg-type]


def test_the_header_is_written_once_and_rows_follow_the_mandatory_format(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    sink = CsvSink(path)
    sink.write(record())
    sink.write(record(prompt=1, completion=2))
    assert path.read_text() == (
        f"{HEADER}\n"
        "2023-10-27T10:30:00.123456+00:00,mistral-small-latest,12,5,17\n"
        "2023-10-27T10:30:00.123456+00:00,mistral-small-latest,1,2,3\n"
    )


def test_a_second_sink_on_the_same_file_does_not_write_the_header_again(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    CsvSink(path).write(record())
    CsvSink(path).write(record())
    assert path.read_text().count(HEADER) == 1
    assert len(read_rows(path)) == 2


def test_timestamps_are_iso_8601_utc_with_microseconds_even_on_a_whole_second(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    on_the_second = datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    CsvSink(path).write(UsageRecord(on_the_second, "m", 1, 1, 2))
    assert read_rows(path)[0]["TimestampUTC"] == "2023-12-31T22:00:00.000000+00:00"


def test_extra_fields_follow_the_mandatory_columns(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    sink = CsvSink(path, extra_fields=("Session", "Function", "LatencyMs", "RequestId", "Tags"))
    sink.write(record(session="nightly", function="app.ask", latency_ms=12.3456, request_id="cmpl-9", tags={"a": "b"}))
    first_line = path.read_text().splitlines()[0]
    assert first_line == HEADER + ",Session,Function,LatencyMs,RequestId,Tags"
    row = read_rows(path)[0]
    assert (row["Session"], row["Function"], row["LatencyMs"], row["RequestId"]) == (
        "nightly",
        "app.ask",
        "12.346",
        "cmpl-9",
    )
    assert row["Tags"] == '{"a":"b"}'


def test_unknown_extra_fields_are_refused_with_the_allowed_names() -> None:
    with pytest.raises(ValueError, match=r"Cost.*Session"):
        CsvSink("x.csv", extra_fields=("Cost",))


@pytest.mark.parametrize("model", ["a,b", 'say "hi"', "two\nlines", "cr\rhere", " spaced ", "=1+2"])
def test_awkward_values_round_trip_through_a_strict_csv_reader(tmp_path: Path, model: str) -> None:
    path = tmp_path / "usage.csv"
    CsvSink(path, extra_fields=("Tags",)).write(record(model=model, tags={"k,1": 'v"2'}))
    (row,) = read_rows(path)
    assert row["Model"] == model
    assert row["Tags"] == '{"k,1":"v\\"2"}'


def test_a_file_cut_mid_line_gets_the_next_row_on_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{HEADER}\n2023-10-27T10:30:00.123456+00:00,mistral-sm")  # a writer died here
    CsvSink(path).write(record())
    lines = path.read_text().split("\n")
    assert lines[1] == "2023-10-27T10:30:00.123456+00:00,mistral-sm"
    assert lines[2] == "2023-10-27T10:30:00.123456+00:00,mistral-small-latest,12,5,17"


def test_a_header_cut_short_is_completed_instead_of_glued_onto(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("TimestampUTC,Model,Prom")
    CsvSink(path).write(record())
    assert path.read_text().splitlines() == [HEADER, "2023-10-27T10:30:00.123456+00:00,mistral-small-latest,12,5,17"]


def test_a_file_with_tokenlog_columns_in_another_layout_gets_rows_in_its_layout(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(HEADER + ",Session\n")
    with pytest.warns(tokenlog.TokenlogWarning, match="rows follow the file's columns"):
        CsvSink(path).write(record(session="s1"))
    assert read_rows(path) == [
        {
            "TimestampUTC": "2023-10-27T10:30:00.123456+00:00",
            "Model": "mistral-small-latest",
            "PromptTokens": "12",
            "CompletionTokens": "5",
            "TotalTokens": "17",
            "Session": "s1",
        }
    ]


def test_a_file_with_its_own_columns_after_the_mandatory_five_is_appended_to_with_them_empty(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(HEADER + ",Notes\n2023-01-01T00:00:00.000000+00:00,m,1,1,2,checked by Ana\n")
    with pytest.warns(tokenlog.TokenlogWarning, match=r"Notes.*left empty"):
        CsvSink(path).write(record())
    assert path.read_text().splitlines()[2] == "2023-10-27T10:30:00.123456+00:00,mistral-small-latest,12,5,17,"
    assert not (tmp_path / "usage.tokenlog.csv").exists()


def test_columns_of_another_tokenlog_version_are_filled_if_known_and_left_empty_if_not(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(HEADER + ",CostUsd,RequestId,Region\n")
    with pytest.warns(tokenlog.TokenlogWarning, match=r"CostUsd, Region"):
        CsvSink(path, extra_fields=("RequestId",)).write(record(request_id="cmpl-1"))
    assert path.read_text().splitlines()[1] == "2023-10-27T10:30:00.123456+00:00,mistral-small-latest,12,5,17,,cmpl-1,"


def test_a_file_with_unknown_columns_keeps_the_per_row_fast_path(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_bytes((HEADER + ",Notes,Owner\r\n").encode())
    sink = CsvSink(path)
    with pytest.warns(tokenlog.TokenlogWarning):
        sink.write(record())  # the first write sees the header
    fields = (WHEN, "m", 1, 2, 3, None, None, None, None, None)
    assert sink.write_fields(fields)  # written from the values, no record built
    assert path.read_bytes().splitlines(keepends=True)[1:] == [
        b"2023-10-27T10:30:00.123456+00:00,mistral-small-latest,12,5,17,,\r\n",
        b"2023-10-27T10:30:00.123456+00:00,m,1,2,3,,\r\n",
    ]


def test_processes_appending_to_a_file_with_its_own_columns_write_whole_rows(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(HEADER + ",Notes\n")
    run_writer_processes(str(path), processes=4, rows=300, threads=(1, 2))
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER + ",Notes"
    assert all(line.count(",") == 5 and line.endswith(",") for line in lines[1:])
    rows = [
        (r["Model"], int(r["PromptTokens"]), int(r["CompletionTokens"]), int(r["TotalTokens"])) for r in read_rows(path)
    ]
    check_writer_rows(rows, processes=4, per_process=300, threads=(1, 2))
    assert not (tmp_path / "usage.tokenlog.csv").exists()


def test_a_header_that_does_not_start_with_the_mandatory_five_still_goes_to_a_side_file(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("Model,TimestampUTC,PromptTokens,CompletionTokens,TotalTokens,Notes\n")
    with pytest.warns(tokenlog.TokenlogWarning, match=r"does not start with TimestampUTC,Model.*usage\.tokenlog\.csv"):
        CsvSink(path).write(record())
    assert path.read_text() == "Model,TimestampUTC,PromptTokens,CompletionTokens,TotalTokens,Notes\n"
    assert [r["TotalTokens"] for r in read_rows(tmp_path / "usage.tokenlog.csv")] == ["17"]


def test_a_foreign_header_sends_rows_to_a_side_file_and_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("date,tokens\n2023-01-01,5\n")
    with pytest.warns(tokenlog.TokenlogWarning, match=r"usage\.csv has the header 'date,tokens'.*usage\.tokenlog\.csv"):
        CsvSink(path).write(record())
    assert path.read_text() == "date,tokens\n2023-01-01,5\n"
    assert [r["TotalTokens"] for r in read_rows(tmp_path / "usage.tokenlog.csv")] == ["17"]


def test_a_file_with_crlf_line_ends_and_a_bom_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n")
    CsvSink(path).write(record())
    assert path.read_bytes().endswith(b"mistral-small-latest,12,5,17\r\n")
    assert len(read_rows(path)) == 1


def test_an_empty_existing_file_gets_the_header(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.touch()
    CsvSink(path).write(record())
    assert path.read_text().startswith(HEADER + "\n")


def test_the_sink_keeps_its_file_after_a_chdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = CsvSink("relative.csv")
    sink.write(record())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sink.write(record())
    assert len(read_rows(tmp_path / "relative.csv")) == 2
    assert not (elsewhere / "relative.csv").exists()


def test_a_deleted_file_is_created_again_with_its_header_at_the_next_check(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    sink = CsvSink(path)
    sink.write(record())
    path.unlink()
    sink.write(record(prompt=1))  # within 50 ms of the last check: it goes to the deleted file, and is kept
    tokenlog.flush()  # checks now (as the next write after 50 ms, or the end of the program, would)
    assert path.read_text().startswith(HEADER + "\n")
    assert [r["PromptTokens"] for r in read_rows(path)] == ["1"]


def test_rows_written_to_a_deleted_file_are_written_again_in_order_by_the_next_write_after_the_check_interval(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.csv"
    sink = CsvSink(path)
    sink.write(record(prompt=0))
    path.unlink()
    for prompt in (1, 2, 3):
        sink.write(record(prompt=prompt))
    assert not path.exists()
    time.sleep(CHECK_EVERY * 1.5)
    sink.write(record(prompt=4))
    assert [r["PromptTokens"] for r in read_rows(path)] == ["1", "2", "3", "4"]
    assert path.read_text().count(HEADER) == 1


def test_rows_written_to_a_deleted_file_are_written_again_when_the_program_ends(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    script = (
        "import os, sys, tokenlog\n"
        "from datetime import datetime, timezone\n"
        "sink = tokenlog.CsvSink(sys.argv[1])\n"
        "now = datetime.now(timezone.utc)\n"
        "sink.write(tokenlog.UsageRecord(now, 'm', 1, 1, 2))\n"
        "os.unlink(sys.argv[1])\n"
        "sink.write(tokenlog.UsageRecord(now, 'm', 2, 2, 4))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    assert [r["PromptTokens"] for r in read_rows(path)] == ["2"]


def test_an_unwritable_path_returns_the_result_warns_with_the_file_and_keeps_the_row(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a directory should be")
    target = blocker / "usage.csv"
    tokenlog.configure(sinks=[target])
    response = chat_response(4, 4)

    @track_usage
    def ask() -> dict[str, object]:
        return response

    with pytest.warns(tokenlog.TokenlogWarning, match=re.escape(str(target))):
        assert ask() is response
    (sink,) = tokenlog.config.default_sinks()
    guarded = guard(sink)
    assert len(guarded.pending) == 1

    blocker.unlink()
    blocker.mkdir()
    tokenlog.flush()
    assert [r["TotalTokens"] for r in read_rows(target)] == ["8"]
    assert len(guarded.pending) == 0


def test_rows_kept_during_a_failure_arrive_in_order_after_recovery(tmp_path: Path) -> None:
    blocker = tmp_path / "dir"
    blocker.write_text("")
    target = blocker / "usage.csv"
    tokenlog.configure(sinks=[target])

    @track_usage
    def ask(prompt: int) -> dict[str, object]:
        return chat_response(prompt, 0)

    with pytest.warns(tokenlog.TokenlogWarning):
        ask(1)
    for prompt in range(2, 6):
        ask(prompt)
    blocker.unlink()
    blocker.mkdir()
    time.sleep(0.2)  # past the first retry delay, so the next call retries by itself
    ask(6)
    assert [r["PromptTokens"] for r in read_rows(target)] == ["1", "2", "3", "4", "5", "6"]


def test_strict_mode_raises_sink_error_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    tokenlog.configure(sinks=[blocker / "usage.csv"], on_error="raise")

    @track_usage
    def ask() -> dict[str, object]:
        return chat_response()

    with pytest.raises(SinkError, match=re.escape(str(blocker / "usage.csv"))):
        ask()


def test_a_lock_held_elsewhere_times_out_and_the_row_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    sink = CsvSink(path, lock_timeout=0.2)
    with open(path, "a") as holder:  # another open file description: the lock conflicts as across processes
        portalocker.lock(holder, portalocker.LockFlags.EXCLUSIVE)
        started = time.monotonic()
        with pytest.raises(SinkError, match=r"held its lock for more than 0\.2 s"):
            sink.write(record())
        assert 0.2 <= time.monotonic() - started < 2.0
        guarded = guard(sink)
        with pytest.warns(tokenlog.TokenlogWarning, match="held its lock"):
            guarded.write(record())
        assert len(guarded.pending) == 1
        portalocker.unlock(holder)
    assert guarded.retry()
    assert len(read_rows(path)) == 1


def test_a_forked_child_writes_through_its_own_lock(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    sink = CsvSink(path)
    sink.write(record(prompt=0))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            for i in range(1, 101):
                sink.write(record(prompt=i))
        finally:
            os._exit(0)
    for i in range(101, 201):
        sink.write(record(prompt=i))
    os.waitpid(pid, 0)
    prompts = sorted(int(r["PromptTokens"]) for r in read_rows(path))
    assert prompts == list(range(201))
