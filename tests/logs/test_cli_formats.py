"""`report`, `validate`, `repair` and `merge` read every format the sinks write, and refuse anything else alike.

The logs are written by the real sinks (CsvSink, JsonlSink, SqliteSink); the commands run in subprocesses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import tokenlog
from tests.helpers import read_rows
from tests.helpers import run_tokenlog as run
from tokenlog import UsageRecord

START = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)
RECORDS = [
    UsageRecord(START + timedelta(seconds=i), "mistral-small-latest", 10 + i, 5, 15 + i, session="s", tags={"t": "a"})
    for i in range(3)
]
SINKS: dict[str, tuple[str, Callable[[Path], Any]]] = {
    "csv": ("usage.csv", lambda path: tokenlog.CsvSink(path, extra_fields=["Session", "Tags"])),
    "jsonl": ("usage.jsonl", lambda path: tokenlog.JsonlSink(path)),
    "sqlite": ("usage.db", lambda path: tokenlog.SqliteSink(path)),
}
COMMANDS = {
    "report": ["report"],
    "validate": ["validate"],
    "repair": ["repair"],
    "merge": ["merge", "-o", "merged.csv"],
}
EXPECTED = "expected a usage log: CSV with the header TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens"


@pytest.fixture(params=list(SINKS))
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Three rows, written by the real sink of the format."""
    name, make = SINKS[request.param]
    path = tmp_path / name
    sink = make(path)
    for record in RECORDS:
        sink.write(record)
    sink.close()
    return path


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_reads_a_log_of_every_format_the_sinks_write(command: str, log: Path, tmp_path: Path) -> None:
    result = run(*COMMANDS[command], log.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    if command == "report":
        assert f"3 calls in {log.name}" in result.stdout
    elif command == "validate":
        assert result.stdout.startswith("OK: ")
        assert "(3 rows" in result.stdout
    elif command == "repair":
        assert result.stdout == f"OK: {log.name} has no broken lines (3 rows); nothing changed\n"
    else:
        assert [row["PromptTokens"] for row in read_rows(tmp_path / "merged.csv")] == ["10", "11", "12"]


def test_validate_names_each_invalid_row_of_a_jsonl_log_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    good = {"timestamp": "2026-06-01T10:00:00.000000+00:00", "model": "m", "prompt_tokens": 1}
    good |= {"completion_tokens": 2, "total_tokens": 3}
    lines = [json.dumps(good), json.dumps({**good, "total_tokens": 4}), '{"timestamp": "2026-06-01T10:0']
    path.write_text("\n".join(lines) + "\n")

    result = run("validate", path.name, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == [
        "usage.jsonl:2: TotalTokens is 4, expected 3 (PromptTokens 1 + CompletionTokens 2)",
        "usage.jsonl:3: is not a JSON object: Unterminated string starting at: line 1 column 15 (char 14)",
    ]
    assert result.stdout.splitlines()[-1].startswith("FAILED: 2 error")


def test_repair_of_a_jsonl_log_with_broken_rows_changes_nothing_and_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_text('{"timestamp": "2026-06-01T10:0\n')
    before = path.read_bytes()
    result = run("repair", path.name, cwd=tmp_path)
    assert result.returncode == 2
    assert path.read_bytes() == before
    assert "repair moves the broken lines of CSV logs only" in result.stderr
    assert "tokenlog merge usage.jsonl --skip-invalid -o" in result.stderr


NOT_LOGS = {
    "a JSON document": ("data.json", b'{\n  "model": "mistral-small-latest",\n  "total_tokens": 17\n}\n'),
    "a JSON array": ("data.json", b'[{"model": "m", "total_tokens": 17}]\n'),
    "binary data": ("blob.bin", bytes(range(256)) * 4),
    "an image named .db": ("picture.db", b"\x89PNG\r\n\x1a\n" + bytes(200)),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("what", list(NOT_LOGS))
def test_every_command_refuses_what_is_not_a_usage_log_in_one_line_with_exit_2(
    command: str, what: str, tmp_path: Path
) -> None:
    name, data = NOT_LOGS[what]
    (tmp_path / name).write_bytes(data)

    result = run(*COMMANDS[command], name, cwd=tmp_path)

    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"tokenlog {command}: {name}: ")
    assert EXPECTED in result.stderr
    assert (tmp_path / name).read_bytes() == data
    assert not (tmp_path / "merged.csv").exists()


def test_messages_count_and_name_things_right() -> None:
    from tokenlog.errors import article, counted

    assert [counted(n, "row") for n in (0, 1, 2, 1204)] == ["0 rows", "1 row", "2 rows", "1,204 rows"]
    assert counted(1, "worker process", "worker processes") == "1 worker process"
    assert counted(3, "worker process", "worker processes") == "3 worker processes"
    assert [article(w) for w in ("dict", "OCRResponse", "SQLite", "EventStream")] == [
        "a dict",
        "an OCRResponse",
        "an SQLite",
        "an EventStream",
    ]


def test_report_of_tokenlog_file_reads_it_whatever_format_and_a_tilde_is_home(log: Path, tmp_path: Path) -> None:
    home = tmp_path.parent / f"{tmp_path.name}-home"
    home.mkdir()
    log.rename(home / log.name)
    result = run("report", cwd=tmp_path, env={"HOME": str(home), "TOKENLOG_FILE": f"~/{log.name}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"3 calls in {home / log.name}" in result.stdout


def test_a_tokenlog_file_whose_suffix_names_no_format_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("report", cwd=tmp_path, env={"TOKENLOG_FILE": "usage.json"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "tokenlog report: TOKENLOG_FILE 'usage.json' has the suffix '.json', which names no log format tokenlog "
        "writes: end the file name in .csv (CSV), .jsonl or .ndjson (JSON Lines), .db, .sqlite or .sqlite3 "
        "(SQLite); or leave it unset and pass configure(sinks=['csv://FILE'])\n"
    )
