"""Rows that cannot be written by the end of the program are saved where they last: beside the log, else in the
user's state directory (``$XDG_STATE_HOME/tokenlog``), never only in the shared temp directory, where they vanish.

Real child processes, real files, a real lock held by this process; the warning must name the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import portalocker

from tests.helpers import read_rows

CHILD = textwrap.dedent(
    """
    import sys, warnings
    import tokenlog

    warnings.simplefilter("always")
    tokenlog.configure(sinks=[tokenlog.CsvSink(sys.argv[1], lock_timeout=0.05)])

    @tokenlog.track_usage
    def ask(i):
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": i, "completion_tokens": 1}}

    for i in range(3):
        ask(i)
    """
)


def run_child(log: Path, state: Path, temp: Path) -> subprocess.CompletedProcess[str]:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(log)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "XDG_STATE_HOME": str(state), "TMPDIR": str(temp)},
    )
    assert child.returncode == 0, child.stderr
    return child


def saved_prompts(path: Path) -> list[int]:
    return [int(row["PromptTokens"]) for row in read_rows(path)]


def test_rows_for_a_log_whose_directory_cannot_be_written_are_saved_in_the_state_directory(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "logs"
    not_a_directory.write_text("a file where the log's directory should be\n")
    state, temp = tmp_path / "state", tmp_path / "temp"
    temp.mkdir()
    child = run_child(not_a_directory / "usage.csv", state, temp)
    (saved,) = (state / "tokenlog").glob("tokenlog-unwritten-*.csv")
    assert saved_prompts(saved) == [0, 1, 2]
    assert f"3 rows could not be written to CsvSink('{not_a_directory / 'usage.csv'}')" in child.stderr
    assert f"they are in {saved}" in child.stderr  # the warning names the file
    assert list(temp.iterdir()) == []


def test_rows_for_a_log_that_stays_locked_are_saved_beside_it(tmp_path: Path) -> None:
    log = tmp_path / "usage.csv"
    state, temp = tmp_path / "state", tmp_path / "temp"
    temp.mkdir()
    with open(log, "a") as holder:  # another process holds the log's lock until the child has ended
        portalocker.lock(holder, portalocker.LockFlags.EXCLUSIVE)
        child = run_child(log, state, temp)
    (saved,) = tmp_path.glob("tokenlog-unwritten-*.csv")
    assert saved_prompts(saved) == [0, 1, 2]
    assert f"they are in {saved}" in child.stderr
    assert log.read_text() == ""
    assert not state.exists()
    assert list(temp.iterdir()) == []
