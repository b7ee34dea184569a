"""Existing files and paths tokenlog did not make: a file that is not a CSV, lines cut short in every awkward
place, a directory where the file should be, a symbolic link, a relative path after ``os.chdir``.

(Other headers, a byte order mark, CRLF and empty files are in tests/sinks/test_csv_sink.py.)
"""

from __future__ import annotations

import csv
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

import tokenlog
from tests.helpers import LOG_HEADER, LOG_ROW, logged_prompts, read_rows
from tokenlog import CsvSink, JsonlSink, SqliteSink, UsageRecord, track_usage
from tokenlog.logs.validate import LogCheck
from tokenlog.sinks.base import Sink

WHEN = datetime(2026, 6, 1, 10, 0, 1, tzinfo=timezone.utc)
NEW_ROW = "2026-06-01T10:00:01.000000+00:00,mistral-small-latest,12,5,17"


def record(prompt: int = 12) -> UsageRecord:
    return UsageRecord(WHEN, "mistral-small-latest", prompt, 5, prompt + 5)


def strict_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle, strict=True))


def test_a_file_that_is_not_a_csv_at_all_is_left_alone_and_rows_go_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    garbage = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"  # binary: NUL bytes, not UTF-8
    path.write_bytes(garbage)
    with pytest.warns(tokenlog.TokenlogWarning, match=r"usage\.tokenlog\.csv"):
        CsvSink(path).write(record())
    assert path.read_bytes() == garbage
    assert read_rows(tmp_path / "usage.tokenlog.csv")[0]["TotalTokens"] == "17"


CUT = {  # what a killed writer left at the end of the file -> the rows a strict csv reader then reads
    "inside a quoted model": ('2026-06-01T10:00:00.000000+00:00,"mistral, sm', ["mistral, sm"]),
    "between a doubled quote": ('2026-06-01T10:00:00.000000+00:00,"say ""', ['say "']),
    "after a closing quote": ('2026-06-01T10:00:00.000000+00:00,"a,b"', ["a,b"]),
    "in a plain field": ("2026-06-01T10:00:00.000000+00:00,mistral-sm", ["mistral-sm"]),
    "inside a quoted line break": ('2026-06-01T10:00:00.000000+00:00,"two\nlines, c', ["two\nlines, c"]),
}


@pytest.mark.parametrize("where", sorted(CUT))
def test_a_line_cut_anywhere_ends_where_it_was_cut_and_the_next_row_reads_whole(tmp_path: Path, where: str) -> None:
    cut, cells = CUT[where]
    path = tmp_path / "usage.csv"
    path.write_text(f"{LOG_HEADER}\n{LOG_ROW}\n{cut}")
    CsvSink(path).write(record())
    assert path.read_text().startswith(f"{LOG_HEADER}\n{LOG_ROW}\n{cut}")  # the cut bytes are kept as they were
    rows = strict_rows(path)
    assert rows[2][1:] == cells  # the cut line is a record of its own...
    assert rows[3] == NEW_ROW.split(",")  # ...and the new row is whole
    assert len(rows) == 4


def test_a_crlf_file_cut_between_cr_and_lf_gets_only_the_lf(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_bytes(f"{LOG_HEADER}\r\n{LOG_ROW}\r".encode())
    CsvSink(path).write(record())
    assert path.read_bytes() == f"{LOG_HEADER}\r\n{LOG_ROW}\r\n{NEW_ROW}\r\n".encode()
    assert list(LogCheck(path).problems()) == []


CUT_SHORT = "(cut short? a writer killed mid-row leaves a line like this)"


def test_a_cut_line_is_reported_by_validate_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{LOG_HEADER}\n{LOG_ROW}\n" + '2026-06-01T10:00:00.000000+00:00,"mistral, sm')
    CsvSink(path).write(record())
    problems = [(p.line, p.message) for p in LogCheck(path).problems() if not p.warning]
    assert problems == [(3, "has 2 fields, expected 5 as in the header " + CUT_SHORT)]


SINKS: dict[str, tuple[type[CsvSink] | type[JsonlSink] | type[SqliteSink], str]] = {
    "csv": (CsvSink, "usage.csv"),
    "jsonl": (JsonlSink, "usage.jsonl"),
    "sqlite": (SqliteSink, "usage.db"),
}


@pytest.mark.parametrize("kind", sorted(SINKS))
def test_a_directory_where_the_file_should_be_keeps_the_rows_until_it_is_gone(tmp_path: Path, kind: str) -> None:
    make, name = SINKS[kind]
    path = tmp_path / name
    path.mkdir()
    sink: Sink = make(path)
    tokenlog.configure(sinks=[sink])

    @track_usage
    def ask(prompt: int) -> dict[str, object]:
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": prompt, "completion_tokens": 1}}

    with pytest.warns(tokenlog.TokenlogWarning, match=re.escape(str(path))):
        assert ask(1)["usage"] == {"prompt_tokens": 1, "completion_tokens": 1}
    ask(2)
    assert [s.pending for s in tokenlog.sink_status() if s.sink is sink] == [2]
    path.rmdir()
    tokenlog.flush()
    assert logged_prompts(path) == [1, 2]


@pytest.mark.parametrize("kind", sorted(SINKS))
def test_a_symbolic_link_is_written_through_and_stays_a_link(tmp_path: Path, kind: str) -> None:
    make, name = SINKS[kind]
    target = tmp_path / "elsewhere" / name
    target.parent.mkdir()
    link = tmp_path / name
    link.symlink_to(target)  # dangling until the first row
    sink: Sink = make(link)
    sink.write(record(1))
    sink.write(record(2))
    sink.close()
    assert link.is_symlink()
    assert logged_prompts(target) == [1, 2]


@pytest.mark.parametrize("kind", sorted(SINKS))
def test_a_relative_path_keeps_naming_the_first_directory_after_a_chdir(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, name = SINKS[kind]
    sink: Sink = make(name)  # relative, and nothing written yet when the directory changes
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sink.write(record(1))
    sink.close()
    assert logged_prompts(tmp_path / name) == [1]
    assert os.listdir(elsewhere) == []
