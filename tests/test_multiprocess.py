"""Many processes append to one CSV file: one header, whole lines, nothing lost."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from helpers import read_rows

PROCESSES = 8
ROWS_PER_PROCESS = 2_000
HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens"


def _writer(path: str, worker: int, start: multiprocessing.synchronize.Event) -> None:
    import os

    os.environ["TOKENLOG_FILE"] = path
    import tokenlog

    tokenlog.configure()

    @tokenlog.track_usage
    def ask(i: int) -> dict[str, object]:
        return {
            "model": f"model-{worker}",
            "usage": {"prompt_tokens": worker, "completion_tokens": i, "total_tokens": worker + i},
        }

    start.wait()  # every process starts appending at the same moment, onto a file nobody created yet
    for i in range(ROWS_PER_PROCESS):
        ask(i)


def _run_once(path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_writer, args=(str(path), w, start)) for w in range(PROCESSES)]
    for process in workers:
        process.start()
    start.set()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0


@pytest.mark.parametrize("attempt", range(3))
def test_eight_spawned_processes_share_one_csv_without_losing_or_garbling_a_row(tmp_path: Path, attempt: int) -> None:
    path = tmp_path / f"shared-{attempt}.csv"
    _run_once(path)

    lines = path.read_text().split("\n")
    assert lines[-1] == ""  # the file ends with a line break
    assert len(lines) - 1 == PROCESSES * ROWS_PER_PROCESS + 1
    assert lines[0] == HEADER
    assert lines.count(HEADER) == 1

    rows = read_rows(path)
    assert all(len(row) == 5 and None not in row for row in rows)
    by_worker: dict[int, list[int]] = {}
    for row in rows:
        worker, completion = int(row["PromptTokens"]), int(row["CompletionTokens"])
        assert row["Model"] == f"model-{worker}"
        assert int(row["TotalTokens"]) == worker + completion
        by_worker.setdefault(worker, []).append(completion)
    # every process wrote each of its rows exactly once, in its own order
    assert by_worker == {w: list(range(ROWS_PER_PROCESS)) for w in range(PROCESSES)}
    assert sum(int(r["TotalTokens"]) for r in rows) == sum(
        w + i for w in range(PROCESSES) for i in range(ROWS_PER_PROCESS)
    )
