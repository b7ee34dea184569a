"""``tokenlog.read_log``: the same records from a CSV, a JSONL and an SQLite log written by the real sinks, streamed,
windowed, invalid rows skipped and counted; ``to_pandas()`` and ``to_polars()`` with the right dtypes."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

import tokenlog
from tokenlog.format import EXTRA_COLUMNS
from tokenlog.logs.read import LogFileError

RESPONSES = [
    {"model": "mistral-small-latest", "id": "a", "usage": {"prompt_tokens": 12, "completion_tokens": 5}},
    {
        "model": "mistral-small-latest",
        "id": "b",
        "usage": {"prompt_tokens": 1013, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 1008}},
    },
    {"model": "mistral-ocr-latest", "id": "c", "usage_info": {"pages_processed": 2, "doc_size_bytes": 100}},
]


def _logs(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "u.csv", tmp_path / "u.jsonl", tmp_path / "u.db"]
    sinks = [
        tokenlog.CsvSink(paths[0], extra_fields=EXTRA_COLUMNS),
        tokenlog.JsonlSink(paths[1]),
        tokenlog.SqliteSink(paths[2]),
    ]
    with tokenlog.usage_session("s", sinks=sinks, tags={"feature": "x"}) as session:
        for response in RESPONSES:
            session.record(response)
    for sink in sinks:
        sink.close()
    return paths


def test_every_format_reads_back_as_the_records_that_were_written(tmp_path: Path) -> None:
    paths = _logs(tmp_path)
    read = [list(tokenlog.read_log(path)) for path in paths]
    for records in read:
        assert [(r.model, r.prompt_tokens, r.completion_tokens, r.total_tokens) for r in records] == [
            ("mistral-small-latest", 12, 5, 17),
            ("mistral-small-latest", 1013, 3, 1016),
            ("mistral-ocr-latest", 0, 0, 0),
        ]
        assert [r.cached_tokens for r in records] == [None, 1008, None]
        assert [r.pages for r in records] == [None, None, 2]
        assert all(r.session == "s" and dict(r.tags) == {"feature": "x"} for r in records)
        assert all(r.timestamp.tzinfo is not None and r.timestamp.utcoffset().total_seconds() == 0 for r in records)
    assert read[0] == read[1] == read[2]
    both = tokenlog.read_log(paths[:2])
    assert len(list(both)) == 6
    assert len(list(both)) == 6  # read again from the files: nothing was held


def test_a_window_and_the_rows_that_are_not_usage_rows(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text(
        "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\n"
        "2026-06-01T10:00:00.000000+00:00,m,1,1,2\n"
        "2026-06-02T10:00:00Z,m,2,1,3\n"
        "2026-06-03T10:00:00,m,3,1,4\n"  # no offset
        "2026-06-03T11:00:00+00:00,m,x,1,4\n"
        "2026-06-04T10:00:00+02:00,m,4,1,5\n"
    )
    records = tokenlog.read_log(
        path, since=datetime(2026, 6, 2, tzinfo=timezone.utc), until="2026-06-04T09:00:00+00:00"
    )
    assert [r.prompt_tokens for r in records] == [2, 4]  # 10:00+02:00 is 08:00 UTC
    assert records.skipped == 2
    assert records.problems[0].endswith(
        "u.csv:4: TimestampUTC is '2026-06-03T10:00:00', expected an ISO 8601 time with a UTC offset"
    )
    assert records.problems[1].endswith("u.csv:5: PromptTokens is 'x', expected a non-negative integer")
    with pytest.raises(LogFileError, match="no such file"):
        tokenlog.read_log(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="no time zone"):
        tokenlog.read_log(path, since=datetime(2026, 6, 2))


def test_to_pandas_has_utc_timestamps_integer_counts_and_nullable_units(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = tokenlog.read_log(_logs(tmp_path)[0]).to_pandas()
    assert str(frame["timestamp"].dtype) == "datetime64[us, UTC]"
    assert {str(frame[c].dtype) for c in ("prompt_tokens", "completion_tokens", "total_tokens")} == {"int64"}
    assert str(frame["cached_tokens"].dtype) == "Int64"
    assert str(frame["cost_usd"].dtype) == "Float64"
    assert frame["cached_tokens"].isna().tolist() == [True, False, True]
    assert frame["total_tokens"].sum() == 1033
    assert frame["tags"].iloc[0] == {"feature": "x"}
    assert pd.api.types.is_string_dtype(frame["model"])


def test_to_polars_has_the_same_rows_and_dtypes(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    frame = tokenlog.read_log(_logs(tmp_path)[2]).to_polars()
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert frame.schema["total_tokens"] == pl.Int64
    assert frame.schema["cost_usd"] == pl.Float64
    assert frame["cached_tokens"].to_list() == [None, 1008, None]
    assert frame["pages"].null_count() == 2
    assert frame["total_tokens"].sum() == 1033
