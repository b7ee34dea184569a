"""Eight spawned processes write to one JSONL file and one SQLite database at once: nothing lost, all parses."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from helpers import check_writer_rows, run_writer_processes

PROCESSES = 8


@pytest.mark.parametrize("name", ["usage.jsonl", "jsonl://usage.log"])
def test_eight_processes_share_one_jsonl_file_without_losing_or_garbling_a_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name.removeprefix("jsonl://")
    spec = str(path) if name.endswith(".jsonl") else f"jsonl://{path}"
    run_writer_processes(spec, processes=PROCESSES, rows=1_000)
    content = path.read_text(encoding="ascii")
    assert content.endswith("\n")
    objects = [json.loads(line) for line in content.splitlines()]
    assert len(objects) == PROCESSES * 1_000
    rows = [(o["model"], o["prompt_tokens"], o["completion_tokens"], o["total_tokens"]) for o in objects]
    check_writer_rows(rows, processes=PROCESSES, per_process=1_000)


def test_eight_processes_share_one_sqlite_database_without_losing_a_row(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    run_writer_processes(f"sqlite:///{path}", processes=PROCESSES, rows=300)
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT model, prompt_tokens, completion_tokens, total_tokens FROM usage ORDER BY rowid"
        ).fetchall()
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(rows) == PROCESSES * 300
    check_writer_rows(rows, processes=PROCESSES, per_process=300)
