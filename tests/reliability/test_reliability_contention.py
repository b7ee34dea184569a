"""Sixteen processes, some with threads, write one CSV, one JSONL and one SQLite file at once: nothing lost or garbled.

The default run does it once with 1,000 rows a process; the stress run (``python -m pytest -m slow``) does it
ten times with 5,000 rows a process.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import LOG_HEADER, check_writer_rows, read_rows, run_writer_processes
from tokenlog.logs.validate import LogCheck

PROCESSES = 16
THREADS = [4 if worker % 4 == 0 else 1 for worker in range(PROCESSES)]  # workers 0, 4, 8 and 12 use 4 threads


def write_and_check_all_three(directory: Path, rows: int) -> None:
    csv_path, jsonl_path, db_path = directory / "usage.csv", directory / "usage.jsonl", directory / "usage.db"
    run_writer_processes(
        [str(csv_path), str(jsonl_path), f"sqlite:///{db_path}"], processes=PROCESSES, rows=rows, threads=THREADS
    )
    expected_sum = sum(worker + i for worker in range(PROCESSES) for i in range(rows))

    lines = csv_path.read_text().split("\n")
    assert lines[-1] == ""  # the file ends with a line break
    assert lines.count(LOG_HEADER) == 1
    assert lines[0] == LOG_HEADER
    assert len(lines) - 2 == PROCESSES * rows
    parsed = read_rows(csv_path)
    assert all(len(row) == 5 and None not in row.values() and None not in row for row in parsed)
    csv_rows = [(r["Model"], int(r["PromptTokens"]), int(r["CompletionTokens"]), int(r["TotalTokens"])) for r in parsed]
    check = LogCheck(csv_path)
    assert [str(problem) for problem in check.problems()] == []
    assert check.rows == PROCESSES * rows

    objects = [json.loads(line) for line in jsonl_path.read_text(encoding="ascii").splitlines()]
    jsonl_rows = [(o["model"], o["prompt_tokens"], o["completion_tokens"], o["total_tokens"]) for o in objects]

    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db_rows = connection.execute(
            "SELECT model, prompt_tokens, completion_tokens, total_tokens FROM usage ORDER BY rowid"
        ).fetchall()
    connection.close()

    for written in (csv_rows, jsonl_rows, db_rows):
        assert len(written) == PROCESSES * rows
        check_writer_rows(written, processes=PROCESSES, per_process=rows, threads=THREADS)
        assert sum(total for *_, total in written) == expected_sum


def test_sixteen_processes_with_threads_share_a_csv_a_jsonl_and_a_sqlite_file_without_loss(tmp_path: Path) -> None:
    write_and_check_all_three(tmp_path, rows=1_000)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(10))
def test_stress_sixteen_processes_times_5000_rows_ten_times(tmp_path: Path, attempt: int) -> None:
    write_and_check_all_three(tmp_path, rows=5_000)
