"""``tokenlog validate``: good logs written by the CSV sink pass; every kind of broken file fails, at its line."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.helpers import mutated_logs, run_tokenlog
from tokenlog import CsvSink, UsageRecord
from tokenlog.logs.validate import LogCheck
from tokenlog.sinks.csv import EXTRA_COLUMNS, MANDATORY_COLUMNS

HEADER = ",".join(MANDATORY_COLUMNS)
ROW = "2026-06-01T10:00:00.123456+00:00,mistral-small-latest,12,5,17"
WHEN = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)


def sink_records(count: int = 5) -> list[UsageRecord]:
    return [
        UsageRecord(
            WHEN + timedelta(seconds=i),
            "mistral-small-latest" if i % 2 else "mistral-large-latest",
            10 + i,
            i,
            10 + 2 * i,
            session="eval, run 1",  # a comma: the sink quotes it
            function="app.ask",
            latency_ms=3.25,
            request_id=f'req-"{i}"',  # a quote: the sink doubles it
            tags={"team": "a", "note": "line one\nline two"},
        )
        for i in range(count)
    ]


def validate(*paths: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_tokenlog("validate", *map(str, paths), cwd=cwd)


@pytest.mark.parametrize("extra", [(), EXTRA_COLUMNS, ("Session", "Tags")])
def test_a_log_written_by_the_csv_sink_is_valid(tmp_path: Path, extra: tuple[str, ...]) -> None:
    path = tmp_path / "mistral_usage_log.csv"
    sink = CsvSink(path, extra_fields=extra)
    for record in sink_records():
        sink.write(record)
    sink.close()
    result = validate(path, cwd=tmp_path)

    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].startswith(f"OK: {path} is in the mandatory format (5 rows")
    assert result.stderr == ""


def test_a_log_that_uses_crlf_throughout_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_bytes(f"{HEADER}\r\n".encode())
    sink = CsvSink(path)  # keeps the file's own line breaks
    sink.write_many(sink_records(3))
    sink.close()
    assert path.read_bytes().count(b"\r\n") == 4
    result = validate(path, cwd=tmp_path)
    assert result.returncode == 0, result.stdout


def test_a_header_only_log_is_valid_with_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(HEADER + "\n")
    result = validate(path, cwd=tmp_path)
    assert result.returncode == 0
    assert "(0 rows)" in result.stdout


BROKEN = {
    "byte-order-mark": (b"\xef\xbb\xbf" + f"{HEADER}\n{ROW}\n".encode(), 1, "starts with a UTF-8 byte order mark"),
    "nul-byte": (f"{HEADER}\n{ROW}\n".encode() + b"2026-06-01T10:00:00+00:00,m\x00,1,1,2\n", 3, "holds a NUL byte"),
    "not-utf8": (f"{HEADER}\n".encode() + b"2026-06-01T10:00:00+00:00,caf\xe9,1,1,2\n", 2, "is not valid UTF-8"),
    "mixed-line-breaks": (f"{HEADER}\n{ROW}\r\n".encode(), 2, "ends with CRLF but line 1 ends with LF"),
    "carriage-return": (f"{HEADER}\n{ROW}\r,x\n".encode(), 2, "holds a carriage return"),
    "no-header": (f"{ROW}\n{ROW}\n".encode(), 1, "is a row, expected the header"),
    "columns-out-of-order": (
        b"Model,TimestampUTC,PromptTokens,CompletionTokens,TotalTokens\n",
        1,
        "the header is 'Model,TimestampUTC,",
    ),
    "missing-column": (b"TimestampUTC,Model,PromptTokens,TotalTokens\n", 1, "expected it to start with TimestampUTC"),
    "duplicate-column": (f"{HEADER},Session,Session\n".encode(), 1, "column 'Session' appears twice"),
    "unnamed-column": (f"{HEADER},\n".encode(), 1, "column 6 of the header has no name"),
    "header-twice": (f"{HEADER}\n{ROW}\n{HEADER}\n{ROW}\n".encode(), 3, "repeats the header"),
    "blank-line": (f"{HEADER}\n{ROW}\n\n{ROW}\n".encode(), 3, "is blank, expected a row"),
    "partial-last-line": (f"{HEADER}\n{ROW}\n2026-06-01T10:00:01.1".encode(), 3, "the last line has no line break"),
    "too-few-fields": (f"{HEADER}\n2026-06-01T10:00:00+00:00,m,1,2\n".encode(), 2, "has 4 fields, expected 5"),
    "too-many-fields": (f"{HEADER}\n{ROW},extra\n".encode(), 2, "has 6 fields, expected 5"),
    "empty-file": (b"", 1, "the file is empty"),
    "z-suffix": (f"{HEADER}\n2026-06-01T10:00:00Z,m,1,1,2\n".encode(), 2, "ends with 'Z', expected '+00:00'"),
    "naive-time": (f"{HEADER}\n2026-06-01T10:00:00,m,1,1,2\n".encode(), 2, "has no UTC offset"),
    "other-offset": (
        f"{HEADER}\n2026-06-01T12:00:00+02:00,m,1,1,2\n".encode(),
        2,
        "is not UTC, expected 2026-06-01T10:00:00.000000+00:00",
    ),
    "not-a-time": (f"{HEADER}\nyesterday,m,1,1,2\n".encode(), 2, "'yesterday' is not an ISO 8601 timestamp"),
    "impossible-date": (f"{HEADER}\n2026-02-30T10:00:00+00:00,m,1,1,2\n".encode(), 2, "is not a real time"),
    "space-separator": (f"{HEADER}\n2026-06-01 10:00:00+00:00,m,1,1,2\n".encode(), 2, "is not written YYYY-MM-DD"),
    "empty-model": (f"{HEADER}\n2026-06-01T10:00:00+00:00,,1,1,2\n".encode(), 2, "Model is '', expected"),
    "negative-count": (f"{HEADER}\n2026-06-01T10:00:00+00:00,m,-1,1,0\n".encode(), 2, "PromptTokens is '-1'"),
    "fractional-count": (f"{HEADER}\n2026-06-01T10:00:00+00:00,m,1,1.5,2\n".encode(), 2, "CompletionTokens is '1.5'"),
    "wrong-total": (f"{HEADER}\n2026-06-01T10:00:00+00:00,m,12,5,18\n".encode(), 2, "TotalTokens is 18, expected 17"),
    "stray-quote": (f'{HEADER}\n2026-06-01T10:00:00+00:00,m"x,1,1,2\n'.encode(), 2, "inside an unquoted field"),
    "text-after-quote": (f'{HEADER}\n2026-06-01T10:00:00+00:00,"m"x,1,1,2\n'.encode(), 2, "text after a closing"),
    "unclosed-quote": (f'{HEADER}\n{ROW}\n2026-06-01T10:00:00+00:00,"m,1,1,2\n'.encode(), 3, "never closed"),
    "cut-inside-quotes": (
        f'{HEADER}\n2026-06-01T10:00:00+00:00,"mistral, sm\n{ROW}\n{ROW}\n'.encode(),
        2,
        "is cut short inside a quoted field (was its writer killed?): line 3 starts a new row",
    ),
    "tags-cut-short": (
        f'{HEADER},Tags\n{ROW},"{{""team"":""a""}}"\n{ROW},"{{""team"":""a"\n'.encode(),
        3,
        'Tags is \'{"team":"a\', expected empty or a JSON object',
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_each_kind_of_broken_file_fails_at_its_line(tmp_path: Path, kind: str) -> None:
    content, line, message = BROKEN[kind]
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(content)
    result = validate(path, cwd=tmp_path)

    assert result.returncode == 1, result.stdout
    problems = [text for text in result.stdout.splitlines() if text.startswith(f"{path}:")]
    assert any(text.startswith(f"{path}:{line}: ") and message in text for text in problems), problems
    errors = f"{len(problems)} error{'' if len(problems) == 1 else 's'}"
    assert result.stdout.splitlines()[-1].startswith(f"FAILED: {errors} in {path}")
    assert "Traceback" not in result.stderr


def test_line_numbers_are_physical_lines_when_a_quoted_field_spans_lines(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f'{HEADER},Tags\n{ROW},"{{""note"":""one\ntwo\nthree""}}"\n2026-06-01T10:00:00+00:00,m,1,1,3,\n')
    result = validate(path, cwd=tmp_path)
    assert f"{path}:2: warning: this row spans 3 lines" in result.stdout
    assert f"{path}:5: TotalTokens is 3, expected 2" in result.stdout


def test_every_problem_is_printed_and_the_verdict_names_the_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(f"{HEADER}\n{ROW}\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\n" + "".join(f"2026-06-01T10:00:0{i}+00:00,m,1,1,{i}\n" for i in range(6)))
    result = validate(good, bad, cwd=tmp_path)

    assert result.returncode == 1
    # totals 0, 1, 2, 3, 4, 5 on lines 2 to 7: only 2 (on line 4) is 1 + 1
    assert [line.split(":")[1] for line in result.stdout.splitlines()[:-1]] == ["2", "3", "5", "6", "7"]
    verdict = f"FAILED: 5 errors in {bad} (1 of 2 files, 7 rows); a strict reader would reject them"
    assert result.stdout.splitlines()[-1] == verdict
    limited = run_tokenlog("validate", "--max-errors", "2", str(bad), cwd=tmp_path)
    assert limited.returncode == 1
    assert limited.stdout.splitlines()[2] == f"{bad}: 3 more problems not shown"


def test_quoting_the_mandatory_columns_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f'{HEADER}\n2026-06-01T10:00:00+00:00,"mistral, small",1,1,2\n')
    result = validate(path, cwd=tmp_path)
    assert result.returncode == 0
    assert f"{path}:2: warning: Model is quoted" in result.stdout
    assert "1 warning" in result.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["missing.csv"], "missing.csv: no such file"), (["."], ".: is a directory"), ([], "the following arguments")],
)
def test_a_file_that_cannot_be_read_is_a_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_tokenlog("validate", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_the_console_script_validates_too(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{HEADER}\n{ROW}\n")
    script = shutil.which("tokenlog", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "validate", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("OK: ")


# -- validate never passes a file that a strict reader rejects ---------------------------------------


def strict_read(data: bytes) -> int:
    """Read a log as a strict consumer would; return its rows, or raise on anything it cannot accept."""
    text = data.decode("utf-8")  # no BOM skipping, no replacement
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = next(reader)
    assert header[:5] == list(MANDATORY_COLUMNS)
    rows = 0
    for row in reader:
        assert len(row) == len(header)
        moment = datetime.fromisoformat(row[0])
        assert moment.utcoffset() == timedelta(0)
        assert row[0].endswith("+00:00")
        prompt, completion, total = (int(value) for value in row[2:5])
        assert all(value.isdigit() for value in row[2:5])
        assert total == prompt + completion
        assert row[1].strip()
        rows += 1
    assert text.endswith(("\n", "\r\n")) or not text
    return rows


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_logs())
def test_a_file_validate_passes_is_one_a_strict_reader_reads_whole(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(data)
    check = LogCheck(path)
    problems = list(check.problems())
    if check.errors == 0:
        assert strict_read(data) == check.rows, problems
