"""Many processes append to one CSV file: one header, whole lines, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import check_writer_rows, read_rows, run_writer_processes

PROCESSES = 8
ROWS_PER_PROCESS = 2_000
HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens"


@pytest.mark.parametrize("attempt", range(3))
def test_eight_spawned_processes_share_one_csv_without_losing_or_garbling_a_row(
    tmp_path: Path, attempt: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"shared-{attempt}.csv"
    monkeypatch.setenv("TOKENLOG_FILE", str(path))  # the spawned processes inherit it
    run_writer_processes(None, processes=PROCESSES, rows=ROWS_PER_PROCESS)

    lines = path.read_text().split("\n")
    assert lines[-1] == ""  # the file ends with a line break
    assert len(lines) - 1 == PROCESSES * ROWS_PER_PROCESS + 1
    assert lines[0] == HEADER
    assert lines.count(HEADER) == 1

    rows = read_rows(path)
    assert all(len(row) == 5 and None not in row for row in rows)
    as_numbers = [(r["Model"], int(r["PromptTokens"]), int(r["CompletionTokens"]), int(r["TotalTokens"])) for r in rows]
    check_writer_rows(as_numbers, processes=PROCESSES, per_process=ROWS_PER_PROCESS)
    assert sum(total for *_, total in as_numbers) == sum(
        w + i for w in range(PROCESSES) for i in range(ROWS_PER_PROCESS)
    )
